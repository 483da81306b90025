"""Soak: heartbeats, update answers and UI reads at once, for minutes, on PostgreSQL.

Creates a database ``relgov_soak_<pid>`` on the PostgreSQL server of ``--database-url``
(dropped at the end), migrates it, seeds an app ``pos`` (released 3.11.0, 3.12.0 rolling out
at 50 %, 3.13.0 in beta, 150 days of adoption history), ``--devices`` devices in
``devices / 5`` stores (5 % in the beta cohort), a logged-in user and device tokens; starts
gunicorn (2 sync workers) and one ``relgov worker`` on loopback, the worker's adoption
rollup every 30 s instead of 600 s so that it has work all the time. Then, in separate
processes, for ``--duration`` seconds:

- **heartbeats**: every device reports every ``--interval`` seconds; half the stores have a
  gateway that sends its devices' heartbeats as one batch, the other devices send their own.
  About a third of the devices upgrade during the run (3.12.0, beta stores 3.13.0) and 1 %
  are new devices that register with their first heartbeat. A 429 is honoured
  (``Retry-After``) and counted apart; a request that failed on the wire is "uncertain";
- **update answers**: devices ask ``GET /api/v1/apps/pos/update`` (``--answer-rate``/s);
- **UI reads**: ``--users`` logged-in people open the dashboard, the release page, the
  adoption pages and the beta cohort pages with 1-4 s between pages;
- **notes**: every ``--publish-every`` s an editor token edits a release's notes (API) and
  asks for publishing; the job worker publishes to the Notion fake
  (``tests/fakes/notion_fake.py``), served on loopback from this process.

Afterwards every heartbeat the service accepted is checked against the database: each
device's ``last_sent_at`` and version must be those of its newest accepted heartbeat and
each version change (first sighting included) must be in the change log at its ``sent_at``;
each edited release's Notion page must end with the newest edit.
The RSS (``VmRSS``) of the gunicorn master, each web worker and the job worker is sampled
every ``--sample-every`` s. Throughput and latencies cover the time after ``--warmup``;
errors and lost heartbeats the whole run. Prints a Markdown table and replaces the
``## Soak`` section of ``docs/benchmarks.md``. Loopback only; everything stops by itself.

    flock /tmp/relgov-bench.lock .venv/bin/python benchmarks/soak.py \\
        [--duration 600] [--warmup 60] [--devices 5000] [--no-write]
"""

from __future__ import annotations

import argparse
import heapq
import http.client
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Shared with the other benchmarks (not copied).
from benchmarks._common import (  # noqa: E402
    DOC,
    add_database_argument,
    free_port,
    gunicorn_command,
    percentile,
    scratch_database,
    stop,
)

SECTION = "## Soak"
COMMAND = "flock /tmp/relgov-bench.lock .venv/bin/python benchmarks/soak.py"
SECRET = "soak-benchmark-secret-key-0123456789-abcdefghij"
EMAIL, PASSWORD = "soak@example.com", "soak-benchmark-password"
APP = "pos"
RELEASED, ROLLING, BETA = "3.11.0", "3.12.0", "3.13.0"
TOKENS = 20  # device tokens; a store uses token ``store index % TOKENS``
ROLLUP_EVERY = 30.0  # the worker's adoption rollup period during the soak (service: 600 s)
FLAT_GROWTH = 0.10  # memory is "flat" when it grew less than this after the warm-up
MiB = 1024 * 1024


# --- seeding ----------------------------------------------------------------------------


@dataclass
class Device:
    device_id: str
    store_id: str
    kind: str
    token: int
    gateway: bool  # its store's gateway batches its heartbeats
    version: str  # what it runs at the start
    upgrade_to: str | None = None
    upgrade_at: float = 0.0  # seconds into the run
    new: bool = False  # not in the fleet: registers with its first heartbeat

    def version_at(self, elapsed: float) -> str:
        if self.upgrade_to is not None and elapsed >= self.upgrade_at:
            return self.upgrade_to
        return self.version


@dataclass
class Seed:
    tokens: list[str]
    release_id: int
    editor_token: str  # read + releases:write: edits notes and asks for publishing
    release_ids: list[int]
    devices: list[Device]
    before: dict[str, str]  # device id -> version in device_state before the run
    seconds: float


def seed(url: str, *, devices: int, duration: float, warmup: float, rng_seed: int = 7) -> Seed:
    """Migrate ``url`` and fill it; plan what every simulated device does during the run."""
    from sqlalchemy import select
    from sqlmodel import Session

    from service import db, migrate
    from service.adoption.demo import timeline
    from service.beta.answers import bump
    from service.models import utcnow
    from service.releases.models import App, Release, ReleaseNote
    from tests.builders import make_token, make_user
    from version_monitor.models import device_state_table, device_table, store_table
    from version_monitor.simulate import build_fleet, simulate_adoption

    started = time.perf_counter()
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    rng = random.Random(rng_seed)
    now = utcnow()
    naive = now.replace(tzinfo=None)
    new_devices = max(1, devices // 100)
    fleet = devices - new_devices
    stores = max(2, fleet // 5)
    with Session(engine) as session:
        build_fleet(session, stores=stores, devices=fleet, now=naive, prefix="K")
        # Publishing is asked for explicitly by the editor stream, not on every edit.
        pos = App(slug=APP, name="POS register", min_supported_version="3.0.0", auto_publish=False)
        session.add(pos)
        session.flush()
        assert pos.id is not None
        day = timedelta(days=1)
        plan = (
            ("3.10.0", "released", 100, now - 15 * day, now - 13 * day),
            (RELEASED, "released", 100, now - 8 * day, now - 6 * day),
            (ROLLING, "rolling_out", 50, now - 3 * day, now - 1 * day),
            (BETA, "beta", 0, now - timedelta(hours=6), None),
        )
        rolling_id = 0
        release_ids: list[int] = []
        for version, state, stage, beta_at, rollout in plan:
            release = Release(
                app_id=pos.id,
                version=version,
                state=state,
                stage_percent=stage,
                created_by="soak",
                beta_at=beta_at,
                rollout_started_at=rollout,
                released_at=rollout if state == "released" else None,
            )
            session.add(release)
            session.flush()
            assert release.id is not None
            release_ids.append(release.id)
            session.add(ReleaseNote(release_id=release.id, generated_markdown=note_text(version)))
            if version == ROLLING:
                assert release.id is not None
                rolling_id = release.id
        history = timeline(session, pos, start=naive - timedelta(days=150))
        simulate_adoption(
            session, app=APP, releases=history, start=naive - timedelta(days=150), now=naive
        )
        bump(session)  # bulk inserts bypass the fleet counter's ORM listener
        user = make_user(session, email=EMAIL, name="Soak", password=PASSWORD)
        raws = [
            make_token(session, creator=user, scopes=["heartbeats:write"], name=f"gateway-{n}")
            for n in range(TOKENS)
        ]
        editor = make_token(session, creator=user, scopes=["read", "releases:write"], name="editor")
        rows = session.execute(
            select(
                device_table.c.device_id,
                store_table.c.external_id,
                store_table.c.in_beta,
                device_table.c.kind,
                device_state_table.c.version,
            )
            .join(store_table, store_table.c.id == device_table.c.store_id)
            .outerjoin(
                device_state_table,
                (device_state_table.c.device_id == device_table.c.id)
                & (device_state_table.c.app == APP),
            )
            .order_by(device_table.c.device_id)
        ).all()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    engine.dispose()

    planned: list[Device] = []
    before: dict[str, str] = {}
    store_names = sorted({r[1] for r in rows})
    gateways = {s for s in store_names if zlib.crc32(s.encode()) % 2 == 0}
    token_of = {s: i % TOKENS for i, s in enumerate(store_names)}
    window = (warmup, max(warmup, duration * 0.85))
    for device_id, store_id, in_beta, kind, version in rows:
        if version is not None:
            before[device_id] = version
        device = Device(
            device_id=device_id,
            store_id=store_id,
            kind=kind,
            token=token_of[store_id],
            gateway=store_id in gateways,
            version=version or RELEASED,
        )
        target = BETA if in_beta else ROLLING
        if device.version != target and rng.random() < 0.35:
            device.upgrade_to = target
            device.upgrade_at = rng.uniform(*window)
        planned.append(device)
    for n in range(new_devices):
        store_id = rng.choice(store_names)
        planned.append(
            Device(
                device_id=f"soak-new-{n:05d}",
                store_id=store_id,
                kind="pos",
                token=token_of[store_id],
                gateway=False,
                version=ROLLING,
                new=True,
            )
        )
    return Seed(
        raws, rolling_id, editor, release_ids, planned, before, time.perf_counter() - started
    )


def note_text(version: str) -> str:
    """Release notes of about 130 blocks: a page and one append when published."""
    fixes = "".join(f"- Fix {n}: the register keeps receipt {n} right\n" for n in range(1, 121))
    return f"# {version}\n\n## Features\n\n- Soak feature\n\n## Fixes\n\n{fixes}"


# --- the service ------------------------------------------------------------------------

WORKER_MAIN = f"""
import sys
import service.adoption
service.adoption.ROLLUP_EVERY_SECONDS = {ROLLUP_EVERY}
from service.cli import main
sys.argv = ["relgov", "worker", "--poll", "1"]
main()
"""


@dataclass
class Services:
    port: int
    web: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    logs: Path


def service_env(
    url: str, folder: Path, rate_limit: int, notion: dict[str, str] | None = None
) -> dict[str, str]:
    (folder / "prom").mkdir(parents=True, exist_ok=True)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RELGOV_", "NOTION_"))}
    return (
        inherited
        | (notion or {})
        | {
            "RELGOV_ENV": "production",
            "RELGOV_SECRET_KEY": SECRET,
            "RELGOV_DATABASE_URL": url,
            "RELGOV_INSTANCE_PATH": str(folder),
            "RELGOV_SECURE_COOKIES": "0",  # plain HTTP on loopback
            "RELGOV_IN_PROCESS_WORKER": "0",
            "RELGOV_HEARTBEAT_RATE_LIMIT": str(rate_limit),
            "PROMETHEUS_MULTIPROC_DIR": str(folder / "prom"),
            "PYTHONPATH": str(ROOT),
        }
    )


def start_services(
    url: str, folder: Path, *, rate_limit: int, notion: dict[str, str] | None = None
) -> Services:
    """gunicorn with 2 sync workers and one job worker; their output goes to ``folder``."""
    env = service_env(url, folder, rate_limit, notion)
    port = free_port()
    web_log = (folder / "gunicorn.log").open("wb")
    web = subprocess.Popen(
        gunicorn_command("wsgi:app", port),
        cwd=ROOT,
        env=env,
        stdout=web_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    web_log.close()  # the child has its own copy
    worker_log = (folder / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_MAIN],
        cwd=ROOT,
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker_log.close()
    services = Services(port, web, worker, folder)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if web.poll() is not None or worker.poll() is not None:
            break
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/login")
            response = conn.getresponse()
            response.read()
            if response.status == 200 and len(children(web.pid)) == 2:
                return services
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.3)
    stop_services(services)
    raise RuntimeError(f"the service did not start; see {folder}/gunicorn.log, worker.log")


def stop_services(services: Services) -> None:
    stop(services.worker)
    stop(services.web)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return sorted(int(p) for p in text.split())


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class MemorySampler(threading.Thread):
    """Every ``every`` s: VmRSS of the gunicorn master, each web worker, the job worker."""

    def __init__(self, services: Services, every: float, started: float) -> None:
        super().__init__(daemon=True)
        self.services, self.every, self.started = services, every, started
        self.samples: dict[str, list[tuple[float, int]]] = {}
        self.pids: dict[str, int] = {}
        self.worker_pids: list[int] = []
        self.halt = threading.Event()

    def sample(self) -> None:
        t = time.monotonic() - self.started
        for pid in children(self.services.web.pid):
            if pid not in self.worker_pids:
                self.worker_pids.append(pid)  # a replaced worker shows as a new one
        found = {"gunicorn master": self.services.web.pid, "job worker": self.services.worker.pid}
        for n, pid in enumerate(self.worker_pids, 1):
            found[f"web worker {n}"] = pid
        for role, pid in found.items():
            value = rss_kib(pid)
            if value is not None:
                self.pids[role] = pid
                self.samples.setdefault(role, []).append((t, value))

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.every)


# --- load generators (each in its own process) --------------------------------------------


@dataclass
class StreamResult:
    name: str
    requests: int = 0  # answered requests after the warm-up
    items: int = 0  # heartbeats in them (heartbeat stream), else = requests
    latencies: list[float] = field(default_factory=list)  # after the warm-up, seconds
    statuses: dict[str, int] = field(default_factory=dict)  # errors over the whole run
    throttled: int = 0  # 429s (honoured, resent)
    total_requests: int = 0
    max_lag: float = 0.0  # how far behind its schedule the stream fell (s)
    notes: dict[str, int] = field(default_factory=dict)

    def error(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def wait_until(self, due: float) -> None:
        """Sleep until ``due`` (monotonic); when already past it, note how far behind."""
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            self.max_lag = max(self.max_lag, -pause)


class Connection:
    """One keep-alive HTTP/1.1 connection to the service; reconnects after a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            self.conn.request(method, path, body, headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _retry_after(headers: dict[str, str]) -> float:
    try:
        return min(30.0, max(0.05, float(headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def heartbeat_load(
    port: int,
    tokens: list[str],
    devices: list[Device],
    interval: float,
    connections: int,
    duration: float,
    warmup: float,
    out: str,
) -> None:
    """Send every device's heartbeats at a steady pace over ``connections`` keep-alive
    connections (one thread each; a device's next heartbeat is scheduled only once its
    previous one was answered, so its ``sent_at`` only grows). Nothing is sent after
    ``duration``: heartbeats still due then are counted as unsent. Writes the result and,
    per device, every accepted heartbeat (sent_at, version) and every uncertain one."""
    rng = random.Random(len(devices))
    senders: list[list[Device]] = []
    by_store: dict[str, list[Device]] = {}
    for device in devices:
        if device.gateway:
            by_store.setdefault(device.store_id, []).append(device)
        else:
            senders.append([device])
    senders.extend(by_store.values())
    result = StreamResult("heartbeats")
    accepted: dict[str, list[tuple[str, str]]] = {}
    uncertain: dict[str, list[tuple[str, str]]] = {}
    lock = threading.Lock()
    start = time.monotonic()
    end = start + duration
    queue: list[tuple[float, int, int, bytes | None]] = [
        (start + rng.uniform(0, interval), n, n, None) for n in range(len(senders))
    ]
    heapq.heapify(queue)
    counter = iter(range(len(senders), 1 << 62))

    def send() -> None:
        conn = Connection(port)
        while True:
            with lock:
                if not queue:
                    return
                entry = heapq.heappop(queue)
            due, _, index, payload = entry
            if due >= end or time.monotonic() >= end:
                with lock:
                    heapq.heappush(queue, entry)
                return
            result.wait_until(due)
            group = senders[index]
            elapsed = time.monotonic() - start
            if payload is None:
                sent_at = datetime.now(UTC).isoformat()
                beats = [
                    {
                        "device_id": d.device_id,
                        "store_id": d.store_id,
                        "app": APP,
                        "version": d.version_at(elapsed),
                        "device_kind": d.kind,
                        "sent_at": sent_at,
                    }
                    for d in group
                ]
                payload = json.dumps(beats if group[0].gateway else beats[0]).encode()
            else:
                beats = json.loads(payload)
                beats = beats if isinstance(beats, list) else [beats]
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {tokens[group[0].token]}",
            }
            began = time.perf_counter()
            try:
                status, response_headers, body = conn.request(
                    "POST", "/api/v1/heartbeats", payload, headers
                )
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    result.total_requests += 1
                    result.error(f"connection: {type(exc).__name__}")
                    for beat in beats:
                        uncertain.setdefault(beat["device_id"], []).append(
                            (beat["sent_at"], beat["version"])
                        )
                    heapq.heappush(queue, (due + interval, next(counter), index, None))
                continue
            latency = time.perf_counter() - began
            answer = json.loads(body) if body and status != 429 else {}
            with lock:
                result.total_requests += 1
                if status == 429:
                    result.throttled += 1
                    again = time.monotonic() + _retry_after(response_headers)
                    heapq.heappush(queue, (again, next(counter), index, payload))
                    continue
                if (
                    status in (200, 202)  # 202: queued, written within the flush interval
                    and answer.get("accepted") == len(beats)
                    and not answer["rejected"]
                ):
                    for beat in beats:
                        accepted.setdefault(beat["device_id"], []).append(
                            (beat["sent_at"], beat["version"])
                        )
                    if answer.get("stale"):
                        result.notes["stale"] = result.notes.get("stale", 0) + answer["stale"]
                    if elapsed >= warmup:
                        result.requests += 1
                        result.items += len(beats)
                        result.latencies.append(latency)
                else:
                    result.error(
                        str(status) if status not in (200, 202) else f"{status} with rejections"
                    )
                heapq.heappush(queue, (due + interval, next(counter), index, None))

    threads = [threading.Thread(target=send) for _ in range(max(1, connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.notes["senders"] = len(senders)
    result.notes["unsent (behind schedule at the end)"] = sum(
        len(senders[index]) for due, _, index, _ in queue if due < end
    )
    Path(out).write_text(
        json.dumps({"result": asdict(result), "accepted": accepted, "uncertain": uncertain})
    )


def answer_load(
    port: int,
    tokens: list[str],
    devices: list[Device],
    rate: float,
    duration: float,
    warmup: float,
    out: str,
) -> None:
    """Devices ask which version to run, ``rate`` requests/s in all, at random moments."""
    rng = random.Random(11)
    result = StreamResult("update answers")
    reasons: Counter[str] = Counter()
    conn = Connection(port)
    start = time.monotonic()
    end = start + duration
    due = start
    while True:
        due += rng.expovariate(rate) if rate > 0 else duration
        if due >= end:
            break
        result.wait_until(due)
        elapsed = time.monotonic() - start
        device = rng.choice(devices)
        query = urlencode(
            {
                "store_id": device.store_id,
                "device_id": device.device_id,
                "current_version": device.version_at(elapsed),
            }
        )
        headers = {"Authorization": f"Bearer {tokens[device.token]}"}
        began = time.perf_counter()
        result.total_requests += 1
        try:
            status, _, body = conn.request(
                "GET", f"/api/v1/apps/{APP}/update?{query}", None, headers
            )
        except (OSError, http.client.HTTPException) as exc:
            result.error(f"connection: {type(exc).__name__}")
            continue
        latency = time.perf_counter() - began
        if status != 200:
            result.error(str(status))
            continue
        reasons[json.loads(body).get("reason", "?")] += 1
        if elapsed >= warmup:
            result.requests += 1
            result.items += 1
            result.latencies.append(latency)
    result.notes = dict(reasons)
    Path(out).write_text(json.dumps({"result": asdict(result)}))


def notes_load(
    port: int,
    token: str,
    release_ids: list[int],
    every: float,
    duration: float,
    warmup: float,
    out: str,
) -> None:
    """An editor (a ``releases:write`` token) edits a release's notes every ``every`` s, in
    turn, and asks for publishing: GET the notes, PUT the edit, POST publish. Writes the
    newest edit marker each release should end up with in Notion."""
    result = StreamResult("notes edit + publish (3 requests)")
    expected: dict[str, str] = {}
    conn = Connection(port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    start = time.monotonic()
    end = start + duration
    n = 0
    while True:
        due = start + every * (n + 0.5)
        if due >= end:
            break
        result.wait_until(due)
        elapsed = time.monotonic() - start
        release_id = release_ids[n % len(release_ids)]
        n += 1
        path = f"/api/v1/releases/{release_id}/notes"
        marker = f"Soak edit {n}"
        began = time.perf_counter()
        result.total_requests += 1
        try:
            status, _, body = conn.request("GET", path, None, headers)
            if status != 200:
                result.error(f"{status} GET notes")
                continue
            notes = json.loads(body)
            text = re.sub(r"\n- Soak edit \d+\n?$", "\n", notes["generated_markdown"])
            edit = {"markdown": text + f"- {marker}\n", "loaded_hash": notes["hash"]}
            result.total_requests += 1
            status, _, body = conn.request("PUT", path, json.dumps(edit).encode(), headers)
            if status != 200:
                result.error(f"{status} PUT notes")
                continue
            result.total_requests += 1
            status, _, body = conn.request(
                "POST", f"/api/v1/releases/{release_id}/publish", b"", headers
            )
            if status != 202:
                result.error(f"{status} POST publish")
                continue
        except (OSError, http.client.HTTPException) as exc:
            result.error(f"connection: {type(exc).__name__}")
            continue
        expected[str(release_id)] = marker
        if elapsed >= warmup:
            result.requests += 3
            result.items += 1
            result.latencies.append(time.perf_counter() - began)
    result.notes = {"edits": n}
    Path(out).write_text(json.dumps({"result": asdict(result), "expected": expected}))


_CSRF = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')


def ui_pages(release_id: int) -> list[str]:
    return [
        "/",
        f"/releases/{release_id}",
        "/releases",
        f"/adoption/{APP}",
        f"/adoption/{APP}?days=365",
        "/beta",
        "/beta/stores",
    ]


def ui_load(
    port: int,
    users: int,
    release_id: int,
    think: tuple[float, float],
    duration: float,
    warmup: float,
    out: str,
) -> None:
    """``users`` people, each logged in once, open a page every ``think`` s (one thread
    each)."""
    import httpx

    result = StreamResult("UI reads")
    lock = threading.Lock()
    start = time.monotonic()
    end = start + duration
    pages = ui_pages(release_id)

    def person(n: int) -> None:
        rng = random.Random(100 + n)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            try:
                form = client.get("/login")
                token = _CSRF.search(form.content)
                assert token is not None, "no CSRF token on /login"
                login = client.post(
                    "/login",
                    data={"email": EMAIL, "password": PASSWORD, "csrf_token": token[1].decode()},
                )
                assert login.status_code == 302, f"login answered {login.status_code}"
            except (AssertionError, httpx.HTTPError) as exc:
                with lock:
                    result.error(f"login: {exc}")
                return
            while True:
                time.sleep(rng.uniform(*think))
                if time.monotonic() >= end:
                    return
                path = rng.choice(pages)
                elapsed = time.monotonic() - start
                began = time.perf_counter()
                try:
                    response = client.get(path)
                except httpx.HTTPError as exc:
                    with lock:
                        result.total_requests += 1
                        result.error(f"connection: {type(exc).__name__}")
                    continue
                latency = time.perf_counter() - began
                with lock:
                    result.total_requests += 1
                    if response.status_code != 200:
                        result.error(f"{response.status_code} {path.split('?')[0]}")
                    elif elapsed >= warmup:
                        result.requests += 1
                        result.items += 1
                        result.latencies.append(latency)

    threads = [threading.Thread(target=person, args=(n,)) for n in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Path(out).write_text(json.dumps({"result": asdict(result)}))


# --- checking what the service kept -------------------------------------------------------


@dataclass
class Verification:
    devices: int = 0  # devices with at least one accepted heartbeat
    heartbeats: int = 0  # accepted heartbeats
    uncertain_devices: int = 0  # checked leniently: a request of theirs failed on the wire
    lost_state: int = 0  # a device's state is older than its newest accepted heartbeat
    wrong_version: int = 0
    expected_changes: int = 0
    lost_changes: int = 0
    unexpected_changes: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.lost_state + self.wrong_version + self.lost_changes


def _naive(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def verify(
    url: str,
    accepted: dict[str, list[tuple[str, str]]],
    uncertain: dict[str, list[tuple[str, str]]],
    before: dict[str, str],
    since: datetime,
) -> Verification:
    """Every accepted heartbeat's effect must be in ``device_state`` and ``version_change``."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.pool import NullPool

    from version_monitor.models import device_state_table, device_table, version_change_table

    ds, vc, dev = device_state_table, version_change_table, device_table
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        states = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                select(dev.c.device_id, ds.c.last_sent_at, ds.c.version)
                .join(ds, ds.c.device_id == dev.c.id)
                .where(ds.c.app == APP)
            )
        }
        logged: dict[str, set[tuple[str, datetime]]] = {}
        for device_id, version, at in conn.execute(
            select(dev.c.device_id, vc.c.to_version, vc.c.at)
            .join(vc, vc.c.device_id == dev.c.id)
            .where(vc.c.app == APP, vc.c.at >= since)
        ):
            logged.setdefault(device_id, set()).add((version, at))
    engine.dispose()

    check = Verification()
    for device_id, beats in accepted.items():
        check.devices += 1
        check.heartbeats += len(beats)
        ordered = sorted((_naive(sent), version) for sent, version in beats)
        newest, version = ordered[-1]
        found = states.get(device_id)
        seen = logged.get(device_id, set())
        if device_id in uncertain:
            check.uncertain_devices += 1
            if found is None or found[0] < newest:
                check.lost_state += 1
                check.examples.append(f"{device_id}: no state at {newest}")
            continue
        if found is None or found[0] != newest:
            check.lost_state += 1
            check.examples.append(f"{device_id}: state {found} but newest accepted {newest}")
        elif found[1] != version:
            check.wrong_version += 1
            check.examples.append(f"{device_id}: version {found[1]}, accepted {version}")
        expected: set[tuple[str, datetime]] = set()
        previous = before.get(device_id)
        for sent, running in ordered:
            if running != previous:
                expected.add((running, sent))
                previous = running
        check.expected_changes += len(expected)
        missing = expected - seen
        check.lost_changes += len(missing)
        check.unexpected_changes += len(seen - expected)
        if missing:
            check.examples.append(f"{device_id}: change log lacks {sorted(missing)[:2]}")
    for device_id in logged.keys() - accepted.keys() - uncertain.keys():
        check.unexpected_changes += len(logged[device_id])
    check.examples = check.examples[:10]
    return check


@dataclass
class Publishing:
    releases: int = 0  # releases whose newest edit was asked to be published
    published: int = 0  # ... and whose Notion page ends with that edit
    drained: bool = True  # the publish queue emptied before the service stopped
    examples: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.releases - self.published


def wait_for_publishing(url: str, timeout: float) -> bool:
    """Wait until no publish job is queued or running (the editor stream has stopped)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                pending = conn.execute(
                    text(
                        "SELECT count(*) FROM job WHERE kind = 'notion_publish' "
                        "AND state IN ('queued', 'running')"
                    )
                ).scalar_one()
            if not pending:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
    finally:
        engine.dispose()


def verify_publishing(url: str, fake: Any, expected: dict[str, str]) -> Publishing:
    """Each edited release's Notion page must end with the newest edit the editor saved."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        notes = {
            str(release_id): (page_id, state)
            for release_id, page_id, state in conn.execute(
                text("SELECT release_id, notion_page_id, publish_state FROM release_note")
            )
        }
    engine.dispose()
    check = Publishing(releases=len(expected))
    for release_id, marker in sorted(expected.items()):
        page_id, state = notes.get(release_id, (None, None))
        bullets = []
        if page_id:
            for block in fake.block_tree(page_id):
                if block["type"] == "bulleted_list_item":
                    rich = block["bulleted_list_item"]["rich_text"]
                    bullets.append("".join(part["plain_text"] for part in rich))
        if state == "published" and bullets and bullets[-1] == marker:
            check.published += 1
        else:
            last = bullets[-1] if bullets else None
            check.examples.append(f"release {release_id}: {state}, page ends {last!r}")
    return check


# --- the run ------------------------------------------------------------------------------


@dataclass
class Options:
    devices: int = 5000
    duration: float = 600.0
    warmup: float = 60.0
    interval: float = 60.0
    answer_rate: float | None = None  # default: every device once every 5 minutes
    users: int = 2
    think: tuple[float, float] = (1.0, 4.0)  # seconds between a person's pages
    heartbeat_processes: int = 2
    connections: int = 4  # keep-alive connections (threads) per heartbeat process
    sample_every: float = 5.0
    rate_limit: int = 100_000
    publish_every: float = 15.0  # s between notes edits + publishes; 0: no Notion stream


@dataclass
class Outcome:
    options: Options
    database: str
    seed_seconds: float
    streams: list[StreamResult]
    verification: Verification
    publishing: Publishing | None
    memory: dict[str, list[tuple[float, int]]]
    replaced_workers: int
    jobs: dict[str, int]
    log_problems: dict[str, int]
    loadavg: tuple[str, str]  # at the start and at the end


def _spawn(target: Any, args: tuple[Any, ...]) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    return process


def _job_counts(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, state, count(*) FROM job GROUP BY kind, state"))
        counts = {f"{kind} {state}": int(n) for kind, state, n in rows}
    engine.dispose()
    return counts


def _log_problems(folder: Path) -> dict[str, int]:
    """Error lines in the service's output (plain or JSON logs) and failed jobs."""
    markers = {
        "gunicorn.log": ("Traceback", "[ERROR]", "[CRITICAL]", "WORKER TIMEOUT"),
        "worker.log": ("Traceback", "[ERROR]", "failed"),
    }
    found: dict[str, int] = {}
    for name, wanted in markers.items():
        path = folder / name
        text = path.read_text(errors="replace") if path.exists() else ""
        counts = {marker: text.count(marker) for marker in wanted}
        counts['"level": "ERROR"'] = text.count('"level": "ERROR"')
        counts['"level": "CRITICAL"'] = text.count('"level": "CRITICAL"')
        for marker, count in counts.items():
            if count:
                found[f"{name}: {marker}"] = count
    return found


def start_notion(stack: ExitStack) -> tuple[Any, dict[str, str]]:
    """The Notion fake on loopback (a thread of this process), schema in place, and the
    environment that points the service at it."""
    from tests.fakes.notion_fake import NotionFake
    from tests.fakes.notion_fixtures import fake_publisher

    fake = stack.enter_context(NotionFake())
    with fake_publisher(fake) as publisher:
        assert publisher.init_schema().ok
    env = {
        "NOTION_TOKEN": fake.token,
        "NOTION_DATABASE_ID": fake.database_id,
        "NOTION_BASE_URL": fake.base_url,
        "RELGOV_BASE_URL": "https://relgov.example.com",
    }
    return fake, env


def run(url: str, options: Options, *, folder: Path | None = None) -> Outcome:
    """Seed ``url`` (an empty or migrated database), start the service, load it, check it."""
    o = options
    folder = folder or Path(tempfile.mkdtemp(prefix="relgov-soak-"))
    seeded = seed(url, devices=o.devices, duration=o.duration, warmup=o.warmup)
    print(f"seeded {len(seeded.devices):,} devices in {seeded.seconds:.1f} s", flush=True)
    load_start = Path("/proc/loadavg").read_text().split()[0]
    processes = []
    outputs = []
    with ExitStack() as stack:
        fake, notion_env = start_notion(stack) if o.publish_every else (None, None)
        services = start_services(url, folder, rate_limit=o.rate_limit, notion=notion_env)
        try:
            since = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
            started = time.monotonic()
            sampler = MemorySampler(services, o.sample_every, started)
            parts = max(1, o.heartbeat_processes)
            shares: list[list[Device]] = [[] for _ in range(parts)]
            # A store's devices stay together (its gateway batches them); stores are dealt
            # in turn, so each process gets as many gateways as single devices.
            order = {
                store: n for n, store in enumerate(sorted({d.store_id for d in seeded.devices}))
            }
            for device in seeded.devices:
                shares[order[device.store_id] % parts].append(device)
            rate = o.answer_rate if o.answer_rate is not None else len(seeded.devices) / 300
            common = (o.duration, o.warmup)
            port, tokens = services.port, seeded.tokens
            for n, share in enumerate(shares):
                outputs.append(str(folder / f"heartbeats-{n}.json"))
                args: tuple[Any, ...] = (port, tokens, share, o.interval, o.connections)
                args = (*args, *common, outputs[-1])
                processes.append(_spawn(heartbeat_load, args))
            outputs.append(str(folder / "answers.json"))
            args = (port, tokens, seeded.devices, rate, *common, outputs[-1])
            processes.append(_spawn(answer_load, args))
            outputs.append(str(folder / "ui.json"))
            args = (port, o.users, seeded.release_id, o.think, *common, outputs[-1])
            processes.append(_spawn(ui_load, args))
            if fake is not None:
                outputs.append(str(folder / "notes.json"))
                args = (port, seeded.editor_token, seeded.release_ids, o.publish_every)
                processes.append(_spawn(notes_load, (*args, *common, outputs[-1])))
            sampler.start()  # after the forks: a forked child gets no copy of its thread
            for process in processes:
                process.join(timeout=o.duration + 300)
            drained = fake is None or wait_for_publishing(url, timeout=120)
            sampler.sample()
            sampler.halt.set()
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()
            stop_services(services)
        load_end = Path("/proc/loadavg").read_text().split()[0]

        streams: list[StreamResult] = []
        accepted: dict[str, list[tuple[str, str]]] = {}
        uncertain: dict[str, list[tuple[str, str]]] = {}
        expected: dict[str, str] = {}
        heartbeats = StreamResult("heartbeats")
        for path in outputs:
            if not Path(path).exists():
                raise RuntimeError(f"a load process wrote no result ({path})")
            data = json.loads(Path(path).read_text())
            part = StreamResult(**data["result"])
            expected.update(data.get("expected", {}))
            if part.name != "heartbeats":
                streams.append(part)
                continue
            accepted.update(data["accepted"])
            uncertain.update(data["uncertain"])
            heartbeats.requests += part.requests
            heartbeats.items += part.items
            heartbeats.latencies += part.latencies
            heartbeats.throttled += part.throttled
            heartbeats.total_requests += part.total_requests
            heartbeats.max_lag = max(heartbeats.max_lag, part.max_lag)
            for key, value in part.statuses.items():
                heartbeats.statuses[key] = heartbeats.statuses.get(key, 0) + value
            for key, value in part.notes.items():
                heartbeats.notes[key] = heartbeats.notes.get(key, 0) + value
        streams.insert(0, heartbeats)
        verification = verify(url, accepted, uncertain, seeded.before, since)
        publishing = verify_publishing(url, fake, expected) if fake is not None else None
        if publishing is not None:
            publishing.drained = drained
    return Outcome(
        options=options,
        database=url.split(":", 1)[0].split("+", 1)[0],
        seed_seconds=seeded.seconds,
        streams=streams,
        verification=verification,
        publishing=publishing,
        memory=sampler.samples,
        replaced_workers=max(0, len(sampler.worker_pids) - 2),
        jobs=_job_counts(url),
        log_problems=_log_problems(folder),
        loadavg=(load_start, load_end),
    )


# --- the report ---------------------------------------------------------------------------


@dataclass
class MemoryRow:
    role: str
    warm_mib: float
    end_mib: float
    peak_mib: float
    growth_mib: float
    growth_share: float
    slope_mib_per_10min: float

    @property
    def flat(self) -> bool:
        return self.growth_share < FLAT_GROWTH


def memory_rows(samples: dict[str, list[tuple[float, int]]], warmup: float) -> list[MemoryRow]:
    rows = []
    for role in sorted(samples, key=lambda r: (r != "gunicorn master", r)):
        points = [(t, kib / 1024) for t, kib in samples[role] if t >= warmup] or [
            (t, kib / 1024) for t, kib in samples[role][-1:]
        ]
        warm, end = points[0][1], points[-1][1]
        slope = 0.0
        if len(points) > 2:
            mean_t = sum(t for t, _ in points) / len(points)
            mean_m = sum(m for _, m in points) / len(points)
            spread = sum((t - mean_t) ** 2 for t, _ in points)
            if spread:
                slope = sum((t - mean_t) * (m - mean_m) for t, m in points) / spread * 600
        rows.append(
            MemoryRow(
                role,
                warm,
                end,
                max(m for _, m in points),
                end - warm,
                (end - warm) / warm if warm else 0.0,
                slope,
            )
        )
    return rows


def publishing_line(check: Publishing | None) -> str:
    if check is None:
        return ""
    text = (
        f" Notion (the local fake): {check.published} of {check.releases} edited releases' "
        "pages end with their newest edit"
    )
    if not check.drained:
        text += " (the publish queue had not emptied 120 s after the load stopped)"
    if check.examples:
        text += " — " + "; ".join(check.examples[:5])
    return text + "."


def report(outcome: Outcome) -> str:
    o = outcome.options
    v = outcome.verification
    measured = o.duration - o.warmup
    errors = sum(sum(s.statuses.values()) for s in outcome.streams)
    memory = memory_rows(outcome.memory, o.warmup)
    flat = all(row.flat for row in memory)
    hb = outcome.streams[0]
    unsent = hb.notes.get("unsent (behind schedule at the end)", 0)
    lines = [
        SECTION,
        "",
        f"`{COMMAND} --duration {o.duration:g} --warmup {o.warmup:g} --devices {o.devices}` "
        f"({datetime.now(UTC):%Y-%m-%d}; {outcome.database}; {os.cpu_count()} CPUs shared "
        f"with other jobs, load average {outcome.loadavg[0]} at the start and "
        f"{outcome.loadavg[1]} at the end). gunicorn with 2 sync workers and one "
        f"`relgov worker` (adoption rollup every {ROLLUP_EVERY:g} s) on loopback; "
        f"{o.devices:,} devices in {max(2, (o.devices - max(1, o.devices // 100)) // 5):,} "
        f"stores send a heartbeat every {o.interval:g} s ({o.heartbeat_processes} processes "
        f"of {o.connections} keep-alive connections; half the stores through a gateway "
        "that batches its devices, a third of the devices upgrading during the run, 1 % new "
        f"devices), devices ask for the update answer ({o.answer_rate or o.devices / 300:.1f}"
        f"/s in all), {o.users} logged-in people read pages every "
        f"{o.think[0]:g}-{o.think[1]:g} s"
        + (
            f" and an editor edits a release's notes and publishes them to Notion (a local "
            f"fake) every {o.publish_every:g} s"
            if o.publish_every
            else ""
        )
        + ". Throughput and "
        f"latencies: the {measured:g} s after a {o.warmup:g} s warm-up; errors and lost "
        f"heartbeats: the whole run. Heartbeat rate limit {o.rate_limit:,} a minute per token "
        f"(`RELGOV_HEARTBEAT_RATE_LIMIT`; {TOKENS} device tokens, a store always uses the same; "
        "a 429 is honoured and counted apart).",
        "",
        "| stream | req/s | items/s | p50 ms | p99 ms | requests (whole run) | errors | 429s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in outcome.streams:
        errs = ", ".join(f"{k}: {n}" for k, n in sorted(s.statuses.items())) or "0"
        lines.append(
            f"| {s.name} | {s.requests / measured:,.1f} | {s.items / measured:,.1f} | "
            f"{percentile(s.latencies, 50) * 1000:.1f} | {percentile(s.latencies, 99) * 1000:.1f}"
            f" | {s.total_requests:,} | {errs} | {s.throttled} |"
        )
    lines += [
        "",
        f"Heartbeats: {v.heartbeats:,} accepted from {v.devices:,} devices; **lost: {v.lost}** "
        f"(state behind the newest accepted heartbeat {v.lost_state}, wrong version "
        f"{v.wrong_version}, missing version changes {v.lost_changes} of "
        f"{v.expected_changes:,} expected; unexplained changes {v.unexpected_changes}; "
        f"devices with a request failed on the wire, checked leniently: "
        f"{v.uncertain_devices}). The simulator fell at most {hb.max_lag:.1f} s behind its "
        f"schedule; heartbeats still due when the run ended, unsent: {unsent:,}. Job worker: "
        + (", ".join(f"{k} {n}" for k, n in sorted(outcome.jobs.items())) or "no jobs")
        + ". Server logs: "
        + (", ".join(f"{k} ×{n}" for k, n in outcome.log_problems.items()) or "no errors")
        + f"; web workers replaced: {outcome.replaced_workers}."
        + publishing_line(outcome.publishing),
        "",
        f"Memory (VmRSS, sampled every {o.sample_every:g} s; after warm-up = first sample "
        f"after {o.warmup:g} s; flat = grew less than {FLAT_GROWTH:.0%}; slope = least "
        "squares over the samples after the warm-up):",
        "",
        "| process | after warm-up MiB | end MiB | peak MiB | growth MiB | growth | "
        "slope MiB/10 min | flat |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in memory:
        lines.append(
            f"| {row.role} | {row.warm_mib:.1f} | {row.end_mib:.1f} | {row.peak_mib:.1f} | "
            f"{row.growth_mib:+.1f} | {row.growth_share:+.1%} | {row.slope_mib_per_10min:+.2f} "
            f"| {'✓' if row.flat else '✗'} |"
        )
    verdict = [
        f"zero errors {'✓' if errors == 0 else f'✗ ({errors})'}",
        f"zero lost heartbeats {'✓' if v.lost == 0 else f'✗ ({v.lost})'}",
        *(
            [f"every edit published {'✓' if not p.lost and p.drained else f'✗ ({p.lost})'}"]
            if (p := outcome.publishing) is not None
            else []
        ),
        f"memory flat after warm-up {'✓' if flat else '✗'}",
        f"kept pace {'✓' if unsent == 0 else f'✗ ({unsent:,} heartbeats unsent)'}",
    ]
    lines += ["", "Targets: " + "; ".join(verdict) + ".", ""]
    if v.examples:
        lines[-1:-1] = ["", "First lost heartbeats: " + "; ".join(v.examples) + "."]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace only the ``## Soak`` section up to its first subsection (re-read just before
    writing)."""
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    start = doc.find(f"\n{SECTION}\n")
    if start == -1:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        start += 1
        # Up to the next heading: hand-written ### notes below the table are kept.
        ends = [doc.find(mark, start + len(SECTION)) for mark in ("\n## ", "\n### ")]
        end = min((e for e in ends if e != -1), default=-1)
        rest = "" if end == -1 else doc[end + 1 :]
        doc = doc[:start] + text + ("\n" + rest if rest else "")
    DOC.write_text(doc.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_database_argument(parser)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds not measured")
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=60.0, help="s between heartbeats")
    parser.add_argument("--answer-rate", type=float, default=None, help="update answers/s")
    parser.add_argument("--users", type=int, default=2, help="people reading pages")
    parser.add_argument("--heartbeat-processes", type=int, default=2)
    parser.add_argument(
        "--connections", type=int, default=4, help="connections per heartbeat process"
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="s between RSS samples")
    parser.add_argument(
        "--rate-limit", type=int, default=100_000, help="heartbeats a minute per token"
    )
    parser.add_argument(
        "--publish-every", type=float, default=15.0, help="s between note edits (0: none)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < args.duration:
        parser.error("--warmup must be shorter than --duration")
    options = Options(
        devices=args.devices,
        duration=args.duration,
        warmup=args.warmup,
        interval=args.interval,
        answer_rate=args.answer_rate,
        users=args.users,
        heartbeat_processes=args.heartbeat_processes,
        connections=args.connections,
        sample_every=args.sample_every,
        rate_limit=args.rate_limit,
        publish_every=args.publish_every,
    )
    with scratch_database(args.database_url, f"relgov_soak_{os.getpid()}") as url:
        outcome = run(url, options)
    text = report(outcome)
    print(text)
    if not args.no_write:
        write_section(text)
    publishing = outcome.publishing
    ok = (
        outcome.verification.lost == 0
        and (publishing is None or (publishing.lost == 0 and publishing.drained))
        and not any(s.statuses for s in outcome.streams)
        and all(row.flat for row in memory_rows(outcome.memory, options.warmup))
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
