"""Stores, devices, the beta cohort, freezes, rollout stages and the update answer.

- ``models``: the tables (Store, Device, CohortEvent, StoreFreeze).
- ``cohort``: pure sticky hashing and fill planning.
- ``rollout``: pure update decision, install windows, stage checks and coverage.
- ``store``: Session functions for stores, devices, the cohort and freezes (never commit).
- ``csv_import``: validate a store CSV line by line, then upsert by external id.
- ``snapshot``: an in-memory fleet picture and its cache for fast update answers.

Never imports flask, ``service``, ``release_notes`` or ``version_monitor``.
"""
