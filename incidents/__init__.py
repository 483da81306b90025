"""Incidents as the talk scores them, pure: impact on store work × stores affected
(``scoring``), and the beta soak counted in business days with a holiday calendar
(``business_days``).

Never imports flask, ``service`` or another domain package; the service records incidents
and gates releases with them.
"""
