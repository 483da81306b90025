"""The weekly release meeting: a week (ISO week, in the meeting's time zone) has one meeting
for every app. Its agenda is the releases whose train leaves that week, the releases carried
over from earlier weeks and the hotfixes; opening it freezes a snapshot of each; each release
gets a decision (go, go with conditions, no-go, defer); the meeting keeps its attendees,
minutes and action items (carried week to week until closed), and closes read-only.

- ``models``; ``weeks`` (ISO weeks and their bounds in a time zone); ``snapshots`` (what the
  meeting sees of a release, frozen); ``services`` (agenda, open, decide, amend, attendees,
  minutes, action items, close, reading a week back).
- ``views`` (pages), ``api`` (``/api/v1/meetings``, ``/api/v1/action-items`` and the older
  per-release ``/api/v1/releases/{id}/meetings`` and ``/api/v1/meeting``), ``demo``.
"""
