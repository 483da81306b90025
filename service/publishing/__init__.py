"""Publishing release notes to Notion, as background jobs (``service.jobs``) behind a circuit
breaker.

- ``notion_publish`` (the job handler, auto-publishing on approval, status and metrics).
- ``views`` (Publish now, the admin page), ``api``, ``cli`` (``relgov notion``,
  ``relgov notes publish``, ``relgov worker``).
"""
