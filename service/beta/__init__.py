"""The web side of ``beta``: stores, devices, the beta cohort, freezes, staged rollout and the
update answer.

- ``models`` (the fleet change counter); ``answers`` (the per-process snapshot behind the
  update answer); ``stages`` (advancing a staged rollout); ``services`` (changes, audited).
- ``views`` (pages), ``api`` (JSON API), ``cli`` (``relgov stores import``), ``demo``.
"""
