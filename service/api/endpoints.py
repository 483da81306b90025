"""Importing this module registers every API endpoint on ``service.api.bp``."""

from service.adoption import api as adoption_api  # noqa: F401
from service.api import apps, core, releases  # noqa: F401
from service.fleet import api as fleet_api  # noqa: F401
from service.incidents import api as incidents_api  # noqa: F401
from service.publishing import api as publishing_api  # noqa: F401
