"""Operations: database backup and restore (``relgov db backup`` / ``restore``), gunicorn hooks."""
