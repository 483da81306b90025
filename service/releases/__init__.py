"""Releases: apps and trains, the lifecycle, checklists and sign-offs, notes, the meeting.

- ``models``; ``apps`` (app records and checklist templates); ``trains`` (weekly trains).
- ``lifecycle`` (the state machine), ``guards`` (who may move a release).
- ``checklist`` (item status, rules, sign-offs), ``notes`` (generate, edit, hash).
- ``services`` (registration, meeting records and agenda), ``repos`` (git remotes).
- ``views``, ``apps_views``, ``notes_views`` (pages); ``api``, ``apps_api`` (JSON API).
"""
