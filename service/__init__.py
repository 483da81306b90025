"""The release governance service: the Flask app (``service.app.create_app``), its pages, JSON
API, CLI and background jobs. The only package that knows the domain packages
(``release_notes``, ``beta``, ``version_monitor``, ``incidents``, ``versioning``, ``utc``).

Importing it imports nothing: ``relgov --help`` and ``relgov notes generate`` never load Flask.
"""
