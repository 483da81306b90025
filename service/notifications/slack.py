"""The Slack side: one message sent through the official ``slack_sdk``, one call at a time.

Two ways out, both bounded by ``SLACK_TIMEOUT_SECONDS``:

- the bot token (``SLACK_BOT_TOKEN``): ``chat.postMessage`` to a channel or a person
  (``slack_sdk.WebClient``, at ``SLACK_BASE_URL``). Each message carries Slack message
  metadata naming its outbox row, so after an attempt whose outcome is unknown (a timeout
  while Slack answered, a worker that died mid-call) :func:`find_sent` can look for it in
  the channel's history instead of posting it twice;
- the incoming webhook (``SLACK_WEBHOOK_URL``, ``slack_sdk.webhook.WebhookClient``): the
  channel the webhook was made for.

The SDK's own retries are off: the job queue retries, honouring ``Retry-After``, and counts
the attempts where people see them. Every failure becomes a :class:`SlackFailure` saying
whether trying again can help (``transient``), how long Slack asked to wait
(``retry_after``), and whether the message may have reached Slack anyway (``unknown``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from service.settings import Settings

METADATA_TYPE = "relgov_notification"
# Slack's documented errors that say "not now" rather than "never".
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)
HINTS = {
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "check SLACK_BOT_TOKEN",
    "account_inactive": "the bot's token was revoked; check SLACK_BOT_TOKEN",
    "token_revoked": "the bot's token was revoked; check SLACK_BOT_TOKEN",
    "channel_not_found": "check the app's Slack channel, and invite the bot to it",
    "not_in_channel": "invite the bot to the channel",
    "is_archived": "the channel is archived; choose another for the app",
    "invalid_token": "check SLACK_WEBHOOK_URL",
    "no_service": "the webhook was removed; check SLACK_WEBHOOK_URL",
    "no_team": "the webhook's workspace is gone; check SLACK_WEBHOOK_URL",
    "channel_is_archived": "the webhook's channel is archived",
    "action_prohibited": "an admin of the workspace restricted this webhook",
}
# A channel id (public C…, private G…, direct D…) or a member id (U…/W…).
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
_MEMBER_ID = re.compile(r"[UW][A-Z0-9]{6,}")


@dataclass(frozen=True)
class Outgoing:
    """What to send: ``via`` "bot" (``channel`` a channel or member id or name) or "webhook"."""

    notification_id: int
    via: str
    channel: str
    text: str
    # The id of the channel a name stood for when a message last went there (the history
    # can only be read by id).
    known_channel_id: str | None = None


@dataclass(frozen=True)
class Delivered:
    ts: str | None = None
    channel: str | None = None


class SlackFailure(Exception):
    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after
        self.unknown = unknown


def is_member_id(channel: str) -> bool:
    return bool(_MEMBER_ID.fullmatch(channel))


def web_client(settings: Settings) -> WebClient:
    # urllib takes a float timeout; slack_sdk annotates it as int.
    timeout = cast(int, settings.slack_timeout_seconds)
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_base_url,
        timeout=timeout,
        retry_handlers=[],
    )


def webhook_client(settings: Settings) -> WebhookClient:
    timeout = cast(int, settings.slack_timeout_seconds)
    return WebhookClient(settings.slack_webhook_url, timeout=timeout, retry_handlers=[])


def send(settings: Settings, out: Outgoing) -> Delivered:
    """One attempt to post ``out``; raises :class:`SlackFailure`."""
    if out.via == "bot":
        return _post(settings, out)
    if out.via == "webhook":
        return _webhook(settings, out)
    raise SlackFailure(f"no way to send a message via {out.via!r}", transient=False)


def _post(settings: Settings, out: Outgoing) -> Delivered:
    try:
        response = web_client(settings).chat_postMessage(
            channel=out.channel,
            text=out.text,
            unfurl_links=False,
            unfurl_media=False,
            metadata={
                "event_type": METADATA_TYPE,
                "event_payload": {"notification_id": out.notification_id},
            },
        )
    except SlackApiError as exc:
        raise _api_failure(exc) from exc
    except URLError as exc:  # the request was not (fully) sent: Slack cannot have it
        raise SlackFailure(f"Slack could not be reached: {exc.reason}", transient=True) from exc
    except Exception as exc:  # sent, but no answer came back (a timeout, a reset)
        raise _unknown(exc) from exc
    return Delivered(ts=response.get("ts"), channel=response.get("channel"))


def _api_failure(exc: SlackApiError) -> SlackFailure:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data: Any = getattr(response, "data", None)
    error = str(data.get("error") or "") if isinstance(data, dict) else ""
    headers = getattr(response, "headers", None) or {}
    if status == 429 or error == "ratelimited":
        return SlackFailure(
            f"Slack answered 429 rate limited{_detail(error)}",
            transient=True,
            retry_after=_retry_after(headers),
        )
    if status >= 500 or error in TRANSIENT_ERRORS:
        return SlackFailure(f"Slack answered {status}{_detail(error)}", transient=True)
    if status == 200:
        return SlackFailure(f"Slack refused the message: {error}{_hint(error)}", transient=False)
    return SlackFailure(f"Slack answered {status}{_detail(error)}{_hint(error)}", transient=False)


def _webhook(settings: Settings, out: Outgoing) -> Delivered:
    try:
        response = webhook_client(settings).send(
            text=out.text, unfurl_links=False, unfurl_media=False
        )
    except URLError as exc:
        raise SlackFailure(f"Slack could not be reached: {exc.reason}", transient=True) from exc
    except Exception as exc:
        raise _unknown(exc) from exc
    status, body = response.status_code, (response.body or "").strip()
    if status == 200:
        return Delivered()
    if status == 429:
        return _raise(
            SlackFailure(
                "Slack answered 429 rate limited",
                transient=True,
                retry_after=_retry_after(response.headers or {}),
            )
        )
    if status >= 500:
        return _raise(SlackFailure(f"Slack answered {status}{_detail(body)}", transient=True))
    return _raise(
        SlackFailure(f"Slack answered {status}{_detail(body)}{_hint(body)}", transient=False)
    )


def _raise(failure: SlackFailure) -> Delivered:
    raise failure


def _unknown(exc: Exception) -> SlackFailure:
    what = "timed out" if isinstance(exc, TimeoutError) else f"failed ({exc.__class__.__name__})"
    return SlackFailure(
        f"the call to Slack {what} after the message was sent; it may have arrived",
        transient=True,
        unknown=True,
    )


def _detail(error: str) -> str:
    return f": {error[:200]}" if error else ""


def _hint(error: str) -> str:
    hint = HINTS.get(error)
    return f" ({hint})" if hint else ""


def _retry_after(headers: Any) -> float | None:
    raw: Any = None
    for name in ("Retry-After", "retry-after"):
        value = headers.get(name) if hasattr(headers, "get") else None
        if value:
            raw = value[0] if isinstance(value, list) else value
            break
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def find_sent(settings: Settings, out: Outgoing, since: datetime) -> Delivered | None:
    """Look for ``out`` in its channel's history (bot only, by its metadata), from a little
    before ``since``. None: not there, or it cannot be known (a webhook, a channel given by
    a name no message has gone to yet, a missing ``*:history`` scope). Raises a transient
    :class:`SlackFailure` when Slack cannot answer now."""
    if out.via != "bot":
        return None
    client = web_client(settings)
    try:
        channel = out.channel
        if not _CHANNEL_ID.fullmatch(channel) and out.known_channel_id:
            channel = out.known_channel_id
        if is_member_id(channel):
            opened = client.conversations_open(users=channel)
            channel = str((opened.get("channel") or {}).get("id") or "")
        if not _CHANNEL_ID.fullmatch(channel):
            return None
        history = client.conversations_history(
            channel=channel,
            oldest=f"{since.timestamp() - 60:.6f}",
            include_all_metadata=True,
            limit=200,
        )
    except SlackApiError as exc:
        failure = _api_failure(exc)
        if failure.transient:
            raise failure from exc
        return None
    except Exception as exc:
        raise SlackFailure(f"Slack's history could not be read: {exc}", transient=True) from exc
    for message in history.get("messages") or []:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if (
            metadata.get("event_type") == METADATA_TYPE
            and payload.get("notification_id") == out.notification_id
        ):
            return Delivered(ts=message.get("ts"), channel=channel)
    return None
