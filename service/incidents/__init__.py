"""Incidents: record them (UI and API), score them (impact × scope, the pure ``incidents``
package), show the trend, and gate a release's promotion from beta on evidence (soak,
adoption, beta incidents).

- ``models``; ``services`` (recording, release suggestion, trend, gates, overrides, the
  promote guard and the checklist rules).
- ``views`` (pages and the release page's panel), ``api`` (``/api/v1/incidents``), ``demo``.
"""
