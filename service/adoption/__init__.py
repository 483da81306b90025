"""The web side of ``version_monitor``: heartbeats in, adoption reports out.

- ``heartbeats`` (the one acceptance pipeline), ``fastpath`` (the common heartbeat answered
  in front of Flask), ``queue`` (queued heartbeats), ``ratelimit``, ``metrics``.
- ``services`` (apps and releases as ``version_monitor`` expects them; stalls, a release's
  adoption); ``periodic`` (rollups, retention, the stall gauge).
- ``views`` (the ``/adoption`` pages), ``api`` (heartbeats and reports), ``cli``, ``demo``.
"""
