"""Typed settings: every environment variable the service reads is read here, once.

``create_app`` reads them (``Settings.from_env``); so do ``relgov`` and the gunicorn config.
The README's table lists them all; ``tests/service/test_settings_coverage.py`` checks that
nothing else in ``service/`` reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from incidents.scoring import (
    DEFAULT_FEW_BELOW,
    DEFAULT_MOST_SHARE,
    InvalidScoreInput,
    ScopeThresholds,
)

ENVIRONMENTS = ("development", "test", "production")
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "placeholder"}
MIN_SECRET_LENGTH = 32


class SettingsError(RuntimeError):
    """The environment does not describe a service that can start safely."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    instance_path: Path = Path("instance")
    database_url: str = ""
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:5000"
    max_content_length: int = 2 * 1024 * 1024
    session_hours: int = 12
    secure_cookies: bool = False
    # Login throttling and HSTS (service/security.py); see the README.
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_minutes: int = 15
    hsts_seconds: int = 0
    # Reverse proxies in front of the service whose X-Forwarded-For/-Proto/-Host are trusted.
    proxy_hops: int = 0
    notion_token: str = ""
    notion_database_id: str = ""
    notion_data_source_id: str = ""
    notion_base_url: str = ""
    # Where each closed weekly meeting's minutes go (a database of their own; the same token).
    notion_meetings_database_id: str = ""
    # Requests per second to Notion from every worker and process together (one bucket in
    # the database; Notion allows about 3), and how long after a create whose outcome is
    # unknown Notion's search may not show the page: no second create before that.
    notion_rate: float = 2.5
    notion_create_settle_seconds: float = 10.0
    # Slack (service/notifications/): an incoming webhook and/or a bot token for
    # chat.postMessage, the API's address (the tests use a local fake), the longest any one
    # call may take, the channel a bot posts to for an app without its own, the incident
    # score from which an incident is announced (per app, changeable), and how many hours
    # before the meeting the sign-off reminders go.
    slack_webhook_url: str = ""
    slack_bot_token: str = ""
    slack_base_url: str = "https://slack.com/api/"
    slack_timeout_seconds: float = 10.0
    slack_default_channel: str = ""
    # Where the weekly meeting's own messages go (opened, closed; a release's go to its
    # app's channel): "" for the default channel / the webhook's.
    slack_meetings_channel: str = ""
    slack_incident_min_score: int = 9
    slack_reminder_hours: int = 24
    in_process_worker: bool = False
    repo_cache: Path = Path("instance/repos")
    # Local repositories (paths, file:// URLs) must lie under this folder; None: the
    # instance folder. Remote hosts allowed http and loopback/link-local addresses (as
    # "host" or "host:port", lower-case); and how long any git command may run.
    repo_root: Path | None = None
    repo_allowed_hosts: tuple[str, ...] = ()
    git_timeout_seconds: float = 60.0
    # Heartbeats per minute per API token (0: no limit); see the README.
    heartbeat_rate_limit: int = 600_000
    # Heartbeats queued in the process and written every this many ms (0: each request
    # writes its own before answering); see service/adoption/queue.py and the README.
    heartbeat_flush_ms: int = 0
    # Where queued heartbeats are kept until written (service/adoption/spool.py); None:
    # INSTANCE/heartbeat-spool (see ``heartbeat_spool``).
    heartbeat_spool_dir: Path | None = None
    log_format: str = ""  # json | text; empty: json in production, text elsewhere
    log_level: str = "INFO"
    job_lease_seconds: float = 600.0
    # ``relgov worker`` serves its own /metrics here (None: it serves none; 0: any free
    # port, logged); see the README.
    worker_metrics_port: int | None = None
    worker_metrics_address: str = "127.0.0.1"
    # Incident scope bands (incidents/scoring.py): fewer stores than this is scope 1, more
    # than this share of the active stores scope 3.
    incident_few_stores: int = DEFAULT_FEW_BELOW
    incident_most_share: float = DEFAULT_MOST_SHARE
    rollup_retention_days: int = 400
    # The weekly meeting's time zone (its weeks, and times on pages about no one app);
    # empty: the first app's train time zone.
    meeting_timezone: str = ""
    # When the weekly meeting is held, in its time zone: "Wed 12:00".
    meeting_time: str = "Wed 12:00"
    # Who a ``relgov`` command acts as in the audit log (empty: the OS user).
    actor: str = ""
    # Prometheus multiprocess mode: the folder every gunicorn worker writes its samples to.
    metrics_dir: str = ""
    # gunicorn (service/ops/gunicorn_conf.py).
    bind: str = "0.0.0.0:8000"
    web_concurrency: int = 4
    forwarded_allow_ips: str = "127.0.0.1"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def heartbeat_spool(self) -> Path:
        """The heartbeat spool's folder (``RELGOV_HEARTBEAT_SPOOL_DIR``)."""
        return self.heartbeat_spool_dir or self.instance_path / "heartbeat-spool"

    @property
    def repo_root_path(self) -> Path:
        """Where local repositories may live (``RELGOV_REPO_ROOT``, else the instance folder)."""
        return self.repo_root if self.repo_root is not None else self.instance_path

    @property
    def notion_configured(self) -> bool:
        return bool(self.notion_token and (self.notion_database_id or self.notion_data_source_id))

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_webhook_url or self.slack_bot_token)

    @property
    def minutes_configured(self) -> bool:
        """Whether closed meetings' minutes can be published to Notion."""
        return bool(self.notion_token and self.notion_meetings_database_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``RELGOV_*`` / ``NOTION_*`` variables (see the README)."""
        env = os.environ if environ is None else environ
        mode = env.get("RELGOV_ENV", "production").strip().lower()
        if mode not in ENVIRONMENTS:
            raise SettingsError(
                f"RELGOV_ENV must be one of {', '.join(ENVIRONMENTS)}, not {mode!r}"
            )
        instance = Path(env.get("RELGOV_INSTANCE_PATH", "instance")).resolve()
        database_url = env.get("RELGOV_DATABASE_URL", "").strip()
        if not database_url:
            database_url = f"sqlite:///{instance / 'relgov.db'}"
        return cls(
            env=mode,
            instance_path=instance,
            database_url=database_url,
            secret_key=env.get("RELGOV_SECRET_KEY", ""),
            base_url=env.get("RELGOV_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
            max_content_length=_int(env, "RELGOV_MAX_CONTENT_LENGTH", 2 * 1024 * 1024),
            session_hours=_int(env, "RELGOV_SESSION_HOURS", 12),
            secure_cookies=_bool(env, "RELGOV_SECURE_COOKIES", mode == "production"),
            login_max_failures=_non_negative(env, "RELGOV_LOGIN_MAX_FAILURES", 5),
            login_max_failures_per_address=_non_negative(
                env, "RELGOV_LOGIN_MAX_FAILURES_PER_ADDRESS", 20
            ),
            login_window_minutes=_non_negative(env, "RELGOV_LOGIN_WINDOW_MINUTES", 15),
            hsts_seconds=_non_negative(env, "RELGOV_HSTS_SECONDS", 0),
            proxy_hops=_non_negative(env, "RELGOV_PROXY_HOPS", 0),
            notion_token=env.get("NOTION_TOKEN", ""),
            notion_database_id=env.get("NOTION_DATABASE_ID", ""),
            notion_data_source_id=env.get("NOTION_DATA_SOURCE_ID", ""),
            notion_base_url=env.get("NOTION_BASE_URL", ""),
            notion_meetings_database_id=env.get("RELGOV_NOTION_MEETINGS_DATABASE_ID", "").strip(),
            notion_rate=_in_range(env, "RELGOV_NOTION_RATE", 2.5, low=0.1, high=3.0),
            notion_create_settle_seconds=_in_range(
                env, "RELGOV_NOTION_CREATE_SETTLE_SECONDS", 10.0, low=0.0, high=3600.0
            ),
            slack_webhook_url=_url(env, "SLACK_WEBHOOK_URL"),
            slack_bot_token=env.get("SLACK_BOT_TOKEN", "").strip(),
            slack_base_url=_url(env, "SLACK_BASE_URL") or "https://slack.com/api/",
            slack_timeout_seconds=_seconds(env, "SLACK_TIMEOUT_SECONDS", 10.0),
            slack_default_channel=env.get("SLACK_DEFAULT_CHANNEL", "").strip(),
            slack_meetings_channel=env.get("SLACK_MEETINGS_CHANNEL", "").strip(),
            slack_incident_min_score=_score(env, "SLACK_INCIDENT_MIN_SCORE", 9),
            slack_reminder_hours=_positive(env, "SLACK_REMINDER_HOURS", 24),
            in_process_worker=_bool(env, "RELGOV_IN_PROCESS_WORKER", False),
            repo_cache=Path(env.get("RELGOV_REPO_CACHE", str(instance / "repos"))),
            repo_root=Path(env.get("RELGOV_REPO_ROOT", "").strip() or instance).resolve(),
            repo_allowed_hosts=_hosts(env, "RELGOV_REPO_ALLOWED_HOSTS"),
            git_timeout_seconds=float(_positive(env, "RELGOV_GIT_TIMEOUT_SECONDS", 60)),
            heartbeat_rate_limit=_non_negative(env, "RELGOV_HEARTBEAT_RATE_LIMIT", 600_000),
            heartbeat_flush_ms=_non_negative(
                env, "RELGOV_HEARTBEAT_FLUSH_MS", 50 if mode == "production" else 0
            ),
            heartbeat_spool_dir=Path(
                env.get("RELGOV_HEARTBEAT_SPOOL_DIR", "").strip() or instance / "heartbeat-spool"
            ).resolve(),
            log_format=_choice(env, "RELGOV_LOG_FORMAT", ("json", "text")),
            log_level=_choice(env, "RELGOV_LOG_LEVEL", ("debug", "info", "warning", "error"))
            or "INFO",
            job_lease_seconds=float(_int(env, "RELGOV_JOB_LEASE_SECONDS", 600)),
            worker_metrics_port=_port(env, "RELGOV_WORKER_METRICS_PORT"),
            worker_metrics_address=env.get("RELGOV_WORKER_METRICS_ADDRESS", "").strip()
            or "127.0.0.1",
            incident_few_stores=_int(env, "RELGOV_INCIDENT_FEW_STORES", DEFAULT_FEW_BELOW),
            incident_most_share=_float(env, "RELGOV_INCIDENT_MOST_SHARE", DEFAULT_MOST_SHARE),
            rollup_retention_days=_positive(env, "RELGOV_ROLLUP_RETENTION_DAYS", 400),
            meeting_timezone=_zone(env, "RELGOV_MEETING_TIMEZONE"),
            meeting_time=_meeting_time(env, "RELGOV_MEETING_TIME"),
            actor=env.get("RELGOV_ACTOR", "").strip(),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR", "").strip(),
            bind=env.get("RELGOV_BIND", "").strip() or "0.0.0.0:8000",
            web_concurrency=_positive(env, "WEB_CONCURRENCY", 4),
            forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", "").strip() or "127.0.0.1",
        )._scope_checked()

    def _scope_checked(self) -> Settings:
        try:
            ScopeThresholds(few_below=self.incident_few_stores, most_share=self.incident_most_share)
        except InvalidScoreInput as exc:
            raise SettingsError(f"incident scope setting: {exc.message}") from None
        return self

    def checked(self) -> Settings:
        """Refuse to start without a real secret outside development; make one up inside it."""
        key = self.secret_key
        if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SECRET_LENGTH:
            if self.env != "development" and self.env != "test":
                raise SettingsError(
                    "RELGOV_SECRET_KEY is missing or a placeholder: set it to a random value of "
                    f"at least {MIN_SECRET_LENGTH} characters, e.g. "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
            return replace(self, secret_key=_development_secret(self.instance_path))
        return self


def _development_secret(instance: Path) -> str:
    """A secret kept in the instance folder so development logins survive a restart."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_number(env, name, default, int, "a whole number"))


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float, "a number")


def _number(env: Mapping[str, str], name: str, default: float, kind: type, what: str) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value: float = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {what}, not {raw!r}") from None
    return value


def _in_range(
    env: Mapping[str, str], name: str, default: float, *, low: float, high: float
) -> float:
    value = _float(env, name, default)
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    return value


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, not {value}")
    return value


def _non_negative(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise SettingsError(f"{name} must be 0 or more, not {value}")
    return value


def _url(env: Mapping[str, str], name: str) -> str:
    """An http(s) URL, or empty when unset."""
    raw = env.get(name, "").strip()
    if raw and not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", raw):
        raise SettingsError(f"{name} must be an http(s) URL, not {raw[:60]!r}")
    return raw


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if not 0 < value <= 300:
        raise SettingsError(f"{name} must be more than 0 and at most 300 seconds, not {value}")
    return value


def _score(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if not 1 <= value <= 15:
        raise SettingsError(f"{name} must be an incident score from 1 to 15, not {value}")
    return value


def _port(env: Mapping[str, str], name: str) -> int | None:
    """A TCP port, 0 (any free one) or, when unset, None."""
    if not env.get(name, "").strip():
        return None
    value = _int(env, name, 0)
    if not 0 <= value <= 65535:
        raise SettingsError(f"{name} must be a port number (0 to 65535), not {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MEETING_TIME = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([01]\d|2[0-3]):([0-5]\d)")


def _meeting_time(env: Mapping[str, str], name: str) -> str:
    raw = " ".join(env.get(name, "").split()) or "Wed 12:00"
    found = _MEETING_TIME.fullmatch(raw.title()[:3] + raw[3:])
    if not found:
        raise SettingsError(
            f"{name} must be a weekday and a time, such as Wed 12:00 (Mon..Sun, 24-hour "
            f"HH:MM), not {raw!r}"
        )
    return found.group(0)


def meeting_time_parts(text: str) -> tuple[int, int, int]:
    """``Wed 12:00`` as (ISO weekday 1-7, hour, minute)."""
    day, clock = text.split()
    hour, minute = clock.split(":")
    return WEEKDAYS.index(day) + 1, int(hour), int(minute)


def _zone(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if raw:
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"{name} must be an IANA time zone such as Asia/Tokyo, not {raw!r}"
            ) from None
    return raw


_HOST = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")


def _hosts(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated ``host`` or ``host:port`` entries (IPv6 in brackets with a port)."""
    entries = []
    for raw in env.get(name, "").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        host, port = entry, ""
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            if rest and not rest.startswith(":"):
                raise SettingsError(f"{name}: {raw.strip()!r} is not host or host:port")
            port = rest[1:]
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        ok = bool(_HOST.fullmatch(host)) or _is_ip(host)
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            ok = False
        if not ok:
            raise SettingsError(
                f"{name}: {raw.strip()!r} is not a host or host:port (e.g. git.example.com, "
                "git.example.com:8443, 127.0.0.1)"
            )
        if port:
            entries.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        else:
            entries.append(host)
    return tuple(entries)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower()
    if raw and raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw.upper() if name.endswith("LEVEL") else raw
