"""People and machines: logging in and out, who am I, and the admin pages for people and
API tokens (the functions behind them live in ``service.auth``)."""
