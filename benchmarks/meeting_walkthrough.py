"""One week's meeting end to end, as a release manager runs it, against local fakes of Notion
and Slack driven by the real clients: open, decide, attendees, minutes, an action item,
close; then the minutes page in (fake) Notion and the messages (fake) Slack received.

    .venv/bin/python benchmarks/meeting_walkthrough.py

The service runs as ``make run`` runs it (``relgov db upgrade``, ``relgov demo``, ``relgov
run`` with its in-process job worker) on a fresh SQLite file, configured for the fakes
through the environment; this script talks to it over HTTP only. It prints each step, the
timings of the meeting page and the inbox (median of 20), what Notion holds and what Slack
was sent. No network but loopback.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.notion_fake import NotionFake  # noqa: E402
from tests.fakes.slack_fake import SlackFake  # noqa: E402
from tests.live_server import free_port, wait_for  # noqa: E402

RELGOV = str(ROOT / ".venv" / "bin" / "relgov")


def _log_in(base: str, email: str, password: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    page = client.get("/login").text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    answer = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 302, answer.text[:300]
    home = client.get("/").text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', home)
    assert csrf
    return client, csrf.group(1)


def _call(client: httpx.Client, csrf: str, method: str, path: str, body: Any = None) -> Any:
    answer = client.request(method, "/api/v1" + path, json=body, headers={"X-CSRFToken": csrf})
    if answer.status_code >= 400:
        raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text[:400]}")
    return answer.json() if answer.content else None


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _median_ms(client: httpx.Client, path: str, runs: int = 20) -> float:
    client.get(path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        assert client.get(path).status_code == 200
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="relgov-walk-"))
    notion = NotionFake()
    notion.start()
    meetings_db, meetings_ds = notion.add_database("Release meetings", {"Name": {"title": {}}})
    slack = SlackFake()
    slack.start()
    port = free_port()
    env: dict[str, str] = {
        **os.environ,
        "RELGOV_ENV": "development",
        "RELGOV_DATABASE_URL": f"sqlite:///{folder / 'walk.db'}",
        "RELGOV_INSTANCE_PATH": str(folder),
        "NOTION_TOKEN": notion.token,
        "NOTION_DATABASE_ID": notion.database_id,
        "NOTION_BASE_URL": notion.base_url,
        "RELGOV_NOTION_MEETINGS_DATABASE_ID": meetings_db,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_BASE_URL": slack.base_url,
        "SLACK_DEFAULT_CHANNEL": "C0RELEASES",
        "SLACK_MEETINGS_CHANNEL": "C0MEETING1",
        "RELGOV_BASE_URL": f"http://127.0.0.1:{port}",
    }
    for step in (["db", "upgrade"], ["notion", "init-schema"], ["demo"]):
        subprocess.run([RELGOV, *step], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [RELGOV, "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=(folder / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(base), 60, "the service")
        slack.posted.clear()
        notion.reset_requests()
        admin, admin_csrf = _log_in(base, "admin@example.com", "demo-admin-password")
        _call(admin, admin_csrf, "PUT", "/apps/pos/notifications", {"channel": "C0POS00001"})
        for email, member in (("rm@example.com", "U0RITA0001"), ("qa@example.com", "U0QUINN001")):
            _call(
                admin,
                admin_csrf,
                "PUT",
                "/notifications/slack-users",
                {"email": email, "slack_user_id": member},
            )

        rm, csrf = _log_in(base, "rm@example.com", "demo-password")
        inbox = _call(rm, csrf, "GET", "/me/inbox")
        week = _call(rm, csrf, "GET", "/meetings/" + date.today().isoformat())["week"]
        print(
            f"1. Inbox of the release manager: {len(inbox['entries'])} entries"
            f" ({inbox['counts']}), next meeting {inbox['next_meeting']}"
        )
        print(f"   this week is {week}.")
        opened = _call(rm, csrf, "POST", f"/meetings/{week}/open")
        agenda = opened["items"]
        print(f"2. Opened {week}: {len(agenda)} releases on the agenda, snapshots frozen.")
        for item in agenda:
            if not item["needs_decision"]:
                continue
            if item["state_now"] in ("in_review",) and item["status"] == "good":
                choice, reason = "go", "checklist complete"
            elif item["status"] == "bad":
                choice, reason = "no_go", "; ".join(item["troubles"])[:300] or "trouble"
            else:
                waiting = ", ".join(t for t in item["troubles"]) or item["detail"] or "not ready"
                choice, reason = "defer", "not ready for this train: " + waiting[:200]
            try:
                _call(
                    rm,
                    csrf,
                    "POST",
                    f"/meetings/{week}/decisions",
                    {"release_id": item["release_id"], "decision": choice, "reason": reason},
                )
            except SystemExit as refused:  # a guard refused the go: defer instead
                print(f"   {item['app']} {item['version']}: {choice} refused ({refused}); defer")
                choice = "defer"
                _call(
                    rm,
                    csrf,
                    "POST",
                    f"/meetings/{week}/decisions",
                    {"release_id": item["release_id"], "decision": "defer", "reason": reason},
                )
            print(f"3. {item['app']} {item['version']} ({item['state_now']}): {choice}")
        _call(
            rm,
            csrf,
            "PUT",
            f"/meetings/{week}/attendees",
            {"people": ["rm@example.com", "qa@example.com", "support@example.com"], "guests": []},
        )
        _call(
            rm,
            csrf,
            "PUT",
            f"/meetings/{week}/minutes",
            {"minutes": "Walked every release. QA to re-run the printer suite."},
        )
        _call(
            rm,
            csrf,
            "POST",
            f"/meetings/{week}/action-items",
            {
                "title": "Re-run the printer suite",
                "owner": "qa@example.com",
                "due_on": (date.today() + timedelta(days=3)).isoformat(),
            },
        )
        print("4. Attendees, minutes and an action item recorded.")
        _call(rm, csrf, "POST", f"/meetings/{week}/close")
        print(f"5. Closed {week}.")

        def minutes_done() -> bool:
            state = _call(rm, csrf, "GET", f"/meetings/{week}/minutes")
            return state.get("state") in ("published", "failed")

        wait_for(minutes_done, 120, "the minutes to be published")
        state = _call(rm, csrf, "GET", f"/meetings/{week}/minutes")
        pages = notion.live_pages(meetings_ds)
        blocks = notion.block_tree(state["notion_page_id"]) if state["notion_page_id"] else []
        print(
            f'6. Minutes: {state["state"]} as "{state["title"]}" ({state["notion_url"]});'
            f" {len(pages)} page(s) in the meetings database, {len(blocks)} blocks;"
            f" {notion.count()} Notion requests since the demo was seeded"
        )
        wait_for(lambda: len(slack.posted) >= 3, 60, "Slack messages")
        time.sleep(3)  # let the last queued messages go
        print("7. Slack received:")
        for posted in slack.posted:
            print(f"   [{posted.channel}] {posted.text[:160]}")
        print("8. Timings (median of 20, the whole request over HTTP):")
        print(f"   meeting page, closed week {week}: {_median_ms(rm, '/meetings/' + week):.0f} ms")
        following = _call(
            rm, csrf, "GET", "/meetings/" + (date.today() + timedelta(days=7)).isoformat()
        )
        print(
            f"   meeting page, next week {following['week']} (live):"
            f" {_median_ms(rm, '/meetings/' + following['week']):.0f} ms"
        )
        print(f"   inbox API: {_median_ms(rm, '/api/v1/me/inbox'):.0f} ms")
        print(f"   dashboard with the inbox: {_median_ms(rm, '/'):.0f} ms")
    finally:
        server.terminate()
        server.wait(10)
        notion.stop()
        slack.stop()


if __name__ == "__main__":
    main()
