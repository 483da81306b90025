"""The release governance service: the Flask app (``service.app.create_app``), its pages, JSON
API, CLI and background jobs. The only package that knows the domain packages
(``release_notes``, ``beta``, ``version_monitor``, ``incidents``, ``versioning``, ``utc``).

Importing it imports next to nothing (``relgov version`` and ``relgov notes generate`` never
load Flask).
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version


def version() -> str:
    """The service's version, as installed (``relgov version``)."""
    try:
        return _installed_version("relgov")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"
