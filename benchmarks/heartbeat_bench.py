"""Benchmark: heartbeats over HTTP, the service under gunicorn against a bare Flask endpoint.

Starts the service (``wsgi:app``) under gunicorn with 2 sync workers on loopback, on a SQLite
file (and on PostgreSQL when ``RELGOV_BENCH_PG_URL`` is set, in a database ``relgov_bench``
that it drops and creates), and a bare Flask endpoint served the same way (the ceiling).
Driver processes, separate from the servers, send for a fixed time:

- single heartbeats (one device each, a new ``sent_at`` every time): requests/s and p99;
  the worst case (every one a new version, most from a device not seen before) and, after
  it, realistic traffic (known devices, one heartbeat in 100 a new version);
- batches of 1,000 heartbeats: heartbeats/s; the worst case (every one a new version) and
  realistic batches (a gateway's 1,000 known devices, one heartbeat in 100 a new version).

Each database runs twice: with the production default, heartbeats queued in each worker
and written every 50 ms (``RELGOV_HEARTBEAT_FLUSH_MS``; requests of 100 heartbeats or more
are written at once anyway), and with ``RELGOV_HEARTBEAT_FLUSH_MS=0``, each request writing
its own. After each run the benchmark waits until ``/metrics`` shows no queued heartbeat
left and counts that wait in the rates; after each server stops it checks in the database
that every device's newest heartbeat answered 2xx is the device's stored state (and exits
with an error when one is not).

Next to each rate: the gunicorn workers' CPU time per request (``/proc``), which other
load on the machine disturbs much less than the rates.

The service runs with its heartbeat rate limit on (``RELGOV_HEARTBEAT_RATE_LIMIT``, a
counter row per token upserted with every request), set to :data:`LIMIT` a minute: the
benchmark's one token sends far more than the default 600,000 a minute allows a real one,
and a refused request would measure the limit, not the ingest. ``--limit-cost`` also runs
each database with the limit off (0), to show what the limiter costs.

``--wrk`` also measures single heartbeats from outside with ``wrk`` (Debian's ``wrk``; its
connections are separate from the Python drivers, and gunicorn's sync workers close each
one): the bare endpoint and the service with queued heartbeats on each database, the worst
case (every heartbeat a new version) and known devices; requests/s, p50, p99, and the
answers that were not 2xx. ``--wrk-only`` runs just that (nothing written to the docs): the
quick comparison to run against another checkout of the code.

``--ab REF`` runs only an A/B from outside with ``wrk`` on SQLite (issue 17, item 14): a
temporary detached git worktree of ``REF`` (``/tmp/hb-REF``, removed at the end) served with
this checkout's virtualenv (``PYTHONPATH``), against this checkout, for ``--rounds`` rounds
alternating which goes first; each round measures the bare endpoint, then each code's
single heartbeats (worst case, then known devices) and batches of 1,000, every server with
the production defaults on a fresh copy of one prepared SQLite file. It prints each run and
a table of medians with the targets (single heartbeats ≥ 80 % of bare, batches ≥
20,000 heartbeats/s); nothing is written to the docs.

Targets: single heartbeats ≥ 50 % of the bare endpoint's rate; batches ≥ 20,000/s. Writes
the table to the ``### Heartbeats`` part of the ``## Version adoption`` section of
``docs/benchmarks.md`` (up to the ``END`` marker: notes below it stay). Everything stops
itself (servers are killed at the end).

    .venv/bin/python benchmarks/heartbeat_bench.py [--seconds 10] [--clients 4] [--limit-cost]
        [--no-write] [--wrk | --wrk-only] [--wrk-connections 8]
    .venv/bin/python benchmarks/heartbeat_bench.py --ab main [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    DOC,
    create_database,
    free_port,
    gunicorn_command,
    stop,
)

SECTION = "## Version adoption"
PART = "### Heartbeats"
END = "<!-- end of heartbeat_bench.py output -->"
COMMAND = ".venv/bin/python benchmarks/heartbeat_bench.py"
STORES, DEVICES = 2_000, 20_000
SECRET = "benchmark-secret-key-0123456789-abcdefghij"
LIMIT = "100000000"  # heartbeats a minute for the benchmark's token: counted, never reached

BARE_APP = """
from flask import Flask, request, jsonify
app = Flask(__name__)

@app.post("/api/v1/heartbeats")
def heartbeats():
    body = request.get_json()
    return jsonify({"accepted": len(body) if isinstance(body, list) else 1, "rejected": []})
"""


def prepare_database(url: str) -> str:
    """Migrate, make the fleet and the app, and return a heartbeats:write token."""
    from sqlmodel import Session

    from service import db, migrate
    from service.releases.models import App
    from tests.builders import make_token, make_user
    from version_monitor.simulate import build_fleet

    engine = db.make_engine(url)
    migrate.upgrade(engine)
    with Session(engine) as session:
        now = datetime.now(UTC).replace(tzinfo=None)
        build_fleet(session, stores=STORES, devices=DEVICES, now=now)
        session.add(App(slug="pos", name="POS"))
        user = make_user(session, email="bench@example.com", name="Bench")
        raw = make_token(session, creator=user, scopes=["heartbeats:write"], name="bench")
    engine.dispose()
    return raw


def start_gunicorn(
    target: str, port: int, env: dict[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """gunicorn serving ``target``; its output (the access log) goes to a file in a
    temporary folder, named on stdout."""
    log = Path(tempfile.mkdtemp(prefix="relgov-hb-log-")) / "gunicorn.log"
    print(f"{target} on port {port}: log in {log}", flush=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            gunicorn_command(target, port),
            cwd=cwd,
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        stop(process)
        raise RuntimeError(f"gunicorn on port {port} did not start")
    booted(process)
    return process


def booted(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until gunicorn's workers have loaded the app: the master listens before its
    workers import anything, and on a busy machine a worker may take seconds to boot, which
    a run would otherwise measure. Booted = 2 workers, idle for 0.5 s (no request is sent
    yet)."""
    deadline = time.monotonic() + timeout
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    before = -1.0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if len(children.read_text().split()) < 2:
            continue
        used = server_cpu(process)
        if 0 <= used - before < 0.02:
            return
        before = used
    raise RuntimeError("gunicorn's workers did not settle")


def server_cpu(process: subprocess.Popen[bytes]) -> float:
    """CPU seconds used so far by the gunicorn workers of ``process`` (Linux ``/proc``)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    ticks = 0
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _beat(n: int, client: int, sent: datetime) -> dict[str, Any]:
    """Worst case: every heartbeat a new version, most of them from an unseen device."""
    device = n % DEVICES
    store = device % STORES
    return {
        "device_id": f"bench-{client}-{device:06d}",
        "store_id": f"S{store + 1:05d}",
        "app": "pos",
        "version": f"3.{n % 7}.0",
        "device_kind": "pos",
        "sent_at": sent.isoformat(),
    }


def _realistic(prefix: str, devices: int) -> Any:
    """Realistic traffic: ``devices`` known devices per driver process (after the warm-up)
    in turn, each moving to a new version once in 100 of its heartbeats (at staggered
    rounds)."""

    def beat(n: int, client: int, sent: datetime) -> dict[str, Any]:
        device, rounds = n % devices, n // devices
        return {
            "device_id": f"{prefix}-{client}-{device:05d}",
            "store_id": f"S{device % STORES + 1:05d}",
            "app": "pos",
            "version": f"3.{(rounds + device) // 100 % 7}.0",
            "device_kind": "pos",
            "sent_at": sent.isoformat(),
        }

    return beat


_real_beat = _realistic("real", 200)  # single heartbeats
# Batches (a store gateway's): 1,000 different devices a request.
_real_batch_beat = _realistic("gw", 5_000)


def drive(
    port: int, token: str, batch: int, seconds: float, client: int, out: Any, real: bool = False
) -> None:
    """One driver process: requests back to back for ``seconds``; puts (latencies, items,
    errors, the newest ``sent_at`` answered 2xx per device)."""
    beat = (_real_batch_beat if batch > 1 else _real_beat) if real else _beat
    latest: dict[str, str] = {}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    items = errors = 0
    n = 0
    base = datetime.now(UTC) - timedelta(hours=1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sent = base + timedelta(milliseconds=n)
        body = (
            [beat(n + i, client, sent) for i in range(batch)]
            if batch > 1
            else beat(n, client, sent)
        )
        n += batch
        payload = json.dumps(body)
        started = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/heartbeats", payload, headers)
            response = conn.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            errors += 1
            continue
        latencies.append(time.perf_counter() - started)
        if response.status in (200, 202, 207):
            items += batch
            for item in body if isinstance(body, list) else [body]:
                latest[item["device_id"]] = item["sent_at"]
        else:
            errors += 1
    out.put((latencies, items, errors, latest))


def queue_drain(port: int) -> float:
    """Seconds until the server's heartbeat queues are empty (``/metrics``), after a drive."""
    started = time.perf_counter()
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        waiting = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("relgov_heartbeats_queue_waiting")
        ]
        if sum(waiting) == 0 or time.perf_counter() - started > 120:
            return time.perf_counter() - started
        time.sleep(0.005)


def run_load(
    port: int,
    token: str,
    *,
    batch: int,
    seconds: float,
    clients: int,
    server: subprocess.Popen[bytes] | None = None,
    real: bool = False,
    sent: dict[str, str] | None = None,
) -> dict[str, float]:
    """Drive ``clients`` processes; their figures. ``sent`` gets each device's newest
    ``sent_at`` that was answered 2xx."""
    queue: Any = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=drive, args=(port, token, batch, seconds, c, queue, real))
        for c in range(clients)
    ]
    cpu_before = server_cpu(server) if server else 0.0
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    drained = queue_drain(port) if server else 0.0
    elapsed = seconds + drained
    cpu = server_cpu(server) - cpu_before if server else float("nan")
    for p in procs:
        p.join(timeout=30)
    if sent is not None:
        for result in results:
            for device, moment in result[3].items():
                if moment > sent.get(device, ""):
                    sent[device] = moment
    latencies = sorted(x for r in results for x in r[0])
    items = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    return {
        # The workers' CPU per request, in ms: what the server spends, whatever else runs.
        "cpu_ms": cpu * 1000 / len(latencies) if latencies else float("nan"),
        # Over the drive and the wait until what the server queued was written.
        "requests_per_s": len(latencies) / elapsed,
        "items_per_s": items / elapsed,
        "drain_ms": drained * 1000,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": p99 * 1000,
        "errors": errors,
    }


def unwritten(url: str, sent: dict[str, str]) -> int:
    """Devices whose newest heartbeat answered 2xx is not their stored state (0: none was
    lost). Read after the server stopped, i.e. after its queues were written."""
    from tests.live_server import not_stored

    return len(not_stored(url, sent))


def service_env(url: str, folder: Path, code: Path = ROOT, limit: str = LIMIT) -> dict[str, str]:
    """The environment of the service (the code in ``code``) in production on ``url``, its
    instance and metrics folders under ``folder``; the flush interval the production
    default unless set."""
    (folder / "prom").mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "RELGOV_HEARTBEAT_FLUSH_MS"}
    return env | {
        "RELGOV_ENV": "production",
        "RELGOV_SECRET_KEY": SECRET,
        "RELGOV_DATABASE_URL": url,
        "RELGOV_INSTANCE_PATH": str(folder),
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "prom"),
        "PYTHONPATH": str(code),
        "RELGOV_HEARTBEAT_RATE_LIMIT": limit,
    }


def bench_database(
    label: str,
    url: str,
    args: argparse.Namespace,
    bare: dict[str, float],
    limit: str = LIMIT,
    flush_ms: str = "",
) -> list[str]:
    token = prepare_database(url)
    env = service_env(url, Path(tempfile.mkdtemp(prefix="relgov-hb-")), limit=limit)
    if flush_ms:
        env["RELGOV_HEARTBEAT_FLUSH_MS"] = flush_ms
    port = free_port()
    server = start_gunicorn("wsgi:app", port, env, ROOT)
    sent: dict[str, str] = {}
    load = {"server": server, "clients": args.clients, "sent": sent}
    try:
        run_load(port, token, batch=1, seconds=2, **load)  # warm up
        single = run_load(port, token, batch=1, seconds=args.seconds, **load)
        batch = run_load(port, token, batch=1000, seconds=args.seconds, **load)
        run_load(port, token, batch=1, seconds=2, real=True, **load)  # the devices' first beats
        real = run_load(port, token, batch=1, seconds=args.seconds, real=True, **load)
        run_load(port, token, batch=1000, seconds=2, real=True, **load)  # the gateways' devices
        real_batch = run_load(port, token, batch=1000, seconds=args.seconds, real=True, **load)
    finally:
        stop(server)
    lost = unwritten(url, sent)
    share = single["requests_per_s"] / bare["requests_per_s"]
    real_share = real["requests_per_s"] / bare["requests_per_s"]
    errors = single["errors"] + batch["errors"] + real["errors"] + real_batch["errors"]
    print(
        f"{label}: single {single['requests_per_s']:.0f} req/s (p99 {single['p99_ms']:.1f} ms, "
        f"{share:.0%} of bare, {single['cpu_ms']:.2f} ms worker CPU each), "
        f"batches {batch['items_per_s']:.0f} heartbeats/s "
        f"(p99 {batch['p99_ms']:.0f} ms per 1,000, {batch['cpu_ms']:.0f} ms CPU each); "
        f"realistic single {real['requests_per_s']:.0f} req/s ({real_share:.0%} of bare, "
        f"p99 {real['p99_ms']:.1f} ms, {real['cpu_ms']:.2f} ms CPU each), realistic batches "
        f"{real_batch['items_per_s']:.0f} heartbeats/s ({real_batch['cpu_ms']:.0f} ms CPU "
        f"each), errors {errors}; "
        f"{len(sent):,} devices, newest heartbeat not stored for {lost}"
    )
    if lost:
        raise SystemExit(f"{label}: {lost} devices' newest accepted heartbeats were not stored")
    share_mark = "✓" if share >= 0.5 else "✗ (target 50 %)"
    real_mark = "✓" if real_share >= 0.5 else "✗ (target 50 %)"
    batch_mark = "✓" if batch["items_per_s"] >= 20_000 else "✗ (target 20,000)"
    real_batch_mark = "✓" if real_batch["items_per_s"] >= 20_000 else "✗ (target 20,000)"
    return [
        f"| {label}, every beat a version change | {single['requests_per_s']:,.0f} "
        f"| {single['p99_ms']:.1f} | {share:.0%} {share_mark} | {single['cpu_ms']:.2f} "
        f"| {batch['items_per_s']:,.0f} {batch_mark} | {batch['p99_ms']:.0f} "
        f"| {batch['cpu_ms']:.0f} |",
        f"| {label}, known devices, 1 beat in 100 a change | {real['requests_per_s']:,.0f} "
        f"| {real['p99_ms']:.1f} | {real_share:.0%} {real_mark} | {real['cpu_ms']:.2f} "
        f"| {real_batch['items_per_s']:,.0f} {real_batch_mark} | {real_batch['p99_ms']:.0f} "
        f"| {real_batch['cpu_ms']:.0f} |",
    ]


# wrk's script: each thread its own devices ("wrk-<mode>-<thread>-<n>"), every request a
# new ``sent_at``; "worst": every heartbeat a new version, 20,000 devices a thread over 2,000
# stores; "real": 200 known devices a thread, one heartbeat in 100 a new version. With a
# batch size (the third argument) above 1, each request is a list of that many "worst"
# heartbeats (a thread's next devices, so 1,000 different devices a request). done() prints
# one line the benchmark reads.
WRK_SCRIPT = r"""
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local n = 0  -- requests of this thread
local m = 0  -- heartbeats of this thread
local base = os.time() - 3600
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[1] ~= nil and args[1] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[1]
  end
  mode = args[2] or "worst"
  batch = tonumber(args[3] or "1")
  shift = tonumber(args[4] or "0")  -- one more each run: a warm-up's devices change too
end

local function beat(sent)
  m = m + 1
  local device, version
  if mode == "real" then
    device = m % 200
    version = math.floor((math.floor(m / 200) + device) / 100) % 7
  else
    device = m % 20000
    version = (m + shift) % 7
  end
  return string.format(
    '{"device_id":"wrk-%s-%s-%06d","store_id":"S%05d","app":"pos","version":"3.%d.0",'
      .. '"device_kind":"pos","sent_at":"%s"}',
    mode, tid, device, device % 2000 + 1, version, sent)
end

function request()
  n = n + 1
  local sent = os.date("!%Y-%m-%dT%H:%M:%S", base + math.floor(n / 1000))
    .. string.format(".%03d+00:00", n % 1000)
  local body
  if batch > 1 then
    local items = {}
    for i = 1, batch do
      items[i] = beat(sent)
    end
    body = "[" .. table.concat(items, ",") .. "]"
  else
    body = beat(sent)
  end
  return wrk.format(nil, "/api/v1/heartbeats", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %.1f %.1f\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


_WRK_RUNS = itertools.count(1)


def wrk_run(
    port: int,
    token: str,
    args: argparse.Namespace,
    *,
    mode: str = "worst",
    batch: int = 1,
    seconds: float | None = None,
    server: subprocess.Popen[bytes] | None = None,
) -> dict[str, float]:
    """One wrk run (single heartbeats, or lists of ``batch``); its figures (latencies in
    ms; ``items_per_s``: heartbeats answered 2xx a second)."""
    script = Path(tempfile.mkdtemp(prefix="relgov-wrk-")) / "heartbeats.lua"
    script.write_text(WRK_SCRIPT)
    cpu_before = server_cpu(server) if server else 0.0
    out = subprocess.run(
        [
            "wrk",
            f"-t{args.wrk_threads}",
            f"-c{args.wrk_connections}",
            f"-d{seconds or args.seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/api/v1/heartbeats",
            "--",
            token,
            mode,
            str(batch),
            str(next(_WRK_RUNS)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = server_cpu(server) - cpu_before if server else float("nan")
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    requests, duration_us, not_2xx, socket_errors, p50_us, p99_us = line.split()[1:]
    seconds_run = int(duration_us) / 1e6
    return {
        "requests_per_s": int(requests) / seconds_run,
        "items_per_s": (int(requests) - int(not_2xx)) * batch / seconds_run,
        "p50_ms": float(p50_us) / 1000,
        "p99_ms": float(p99_us) / 1000,
        "not_2xx": int(not_2xx),
        "socket_errors": int(socket_errors),
        "cpu_ms": cpu * 1000 / int(requests) if server and int(requests) else float("nan"),
    }


def wrk_compare(args: argparse.Namespace, pg: str) -> list[str]:
    """Single heartbeats from outside with wrk: the bare endpoint, then the service with
    queued heartbeats on SQLite (and PostgreSQL); table rows."""
    if shutil.which("wrk") is None:
        raise SystemExit("--wrk needs wrk (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="relgov-bare-"))
    (tmp / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    server = start_gunicorn("bare_app:app", port, os.environ | {"PYTHONPATH": str(tmp)}, tmp)
    try:
        run_load(port, "", batch=1, seconds=2, clients=args.clients)  # workers up and warm
        wrk_run(port, "", args, seconds=2)
        bare = wrk_run(port, "", args, server=server)
    finally:
        stop(server)

    def row(label: str, figures: dict[str, float], share: str) -> str:
        return (
            f"| {label} | {figures['requests_per_s']:,.0f} | {share} | {figures['p50_ms']:.1f} "
            f"| {figures['p99_ms']:.1f} | {figures['cpu_ms']:.2f} "
            f"| {figures['not_2xx'] + figures['socket_errors']:,} |"
        )

    print(
        f"wrk, bare Flask endpoint: {bare['requests_per_s']:.0f} req/s, p50 "
        f"{bare['p50_ms']:.1f} ms, p99 {bare['p99_ms']:.1f} ms"
    )
    rows = [row("bare Flask endpoint (ceiling)", bare, "100 %")]
    databases = [
        ("SQLite (WAL file)", f"sqlite:///{tempfile.mkdtemp(prefix='relgov-wrk-db-')}/b.db")
    ]
    if pg:
        databases.append(("PostgreSQL", create_database(pg, "relgov_bench")))
    for label, url in databases:
        token = prepare_database(url)
        env = service_env(url, Path(tempfile.mkdtemp(prefix="relgov-hb-")))
        port = free_port()
        server = start_gunicorn("wsgi:app", port, env, ROOT)
        try:
            run_load(port, token, batch=1, seconds=2, clients=args.clients)  # workers up, warm
            for mode, what in (("worst", "every beat a version change"), ("real", "known devices")):
                wrk_run(port, token, args, mode=mode, seconds=2)  # warm-up, first sightings
                figures = wrk_run(port, token, args, mode=mode, server=server)
                share = figures["requests_per_s"] / bare["requests_per_s"]
                mark = "✓" if share >= 0.8 else "✗ (target 80 %)"
                print(
                    f"wrk, {label}, queued, {what}: {figures['requests_per_s']:.0f} req/s "
                    f"({share:.0%} of bare), p50 {figures['p50_ms']:.1f} ms, p99 "
                    f"{figures['p99_ms']:.1f} ms, {figures['cpu_ms']:.2f} ms worker CPU each, "
                    f"not 2xx {figures['not_2xx']}, socket errors {figures['socket_errors']}"
                )
                rows.append(row(f"{label}, queued, {what}", figures, f"{share:.0%} {mark}"))
        finally:
            stop(server)
    return rows


def wrk_table(args: argparse.Namespace, rows: list[str]) -> str:
    return "\n".join(
        [
            f"From outside with `wrk` (`--wrk`; {args.wrk_threads} threads, "
            f"{args.wrk_connections} connections, {args.seconds:g} s a run after a 2 s "
            "warm-up; gunicorn 2 sync workers, which close every connection; the rate limit "
            "on as above; target: 80 % of bare):",
            "",
            "| server, traffic | single heartbeats req/s | share of bare | p50 ms | p99 ms "
            "| worker CPU ms per request | answers not 2xx, socket errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )


# --- A/B from outside: this checkout against another commit --------------------------------


def _worktree(ref: str) -> Path:
    """A temporary detached git worktree of ``ref`` (removed by :func:`_drop_worktree`)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in ref)
    path = Path(tempfile.gettempdir()) / f"hb-{safe}"
    if path.exists():
        raise SystemExit(f"{path} exists: remove it (git worktree remove --force {path})")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), ref], check=True
    )
    return path


def _drop_worktree(path: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
    )


def _commit(tree: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _migrations(tree: Path) -> list[str]:
    return sorted(p.name for p in (tree / "service/migrations/versions").glob("*.py"))


def _sqlite_copy(template: Path) -> str:
    """A fresh copy of the prepared SQLite file; its URL."""
    folder = Path(tempfile.mkdtemp(prefix="relgov-ab-db-"))
    shutil.copy(template, folder / "b.db")
    return f"sqlite:///{folder / 'b.db'}"


def _ab_bare(args: argparse.Namespace) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="relgov-bare-"))
    (tmp / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    server = start_gunicorn("bare_app:app", port, os.environ | {"PYTHONPATH": str(tmp)}, tmp)
    try:
        wrk_run(port, "", args, seconds=2)  # workers up and warm
        return wrk_run(port, "", args, server=server)
    finally:
        stop(server)


def _ab_service(
    tree: Path, template: Path, token: str, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """The service of ``tree`` under gunicorn with the production defaults on a fresh copy
    of the prepared SQLite file: single heartbeats (worst case, then known devices) and
    batches of 1,000, each after a 2 s warm-up; then the wait until nothing is queued."""
    folder = Path(tempfile.mkdtemp(prefix="relgov-ab-"))
    env = service_env(_sqlite_copy(template), folder, code=tree)
    port = free_port()
    server = start_gunicorn("wsgi:app", port, env, tree)
    figures: dict[str, dict[str, float]] = {}
    try:
        for name, mode, batch in (
            ("single", "worst", 1),
            ("real", "real", 1),
            ("batch", "worst", 1000),
        ):
            wrk_run(port, token, args, mode=mode, batch=batch, seconds=2)
            figures[name] = wrk_run(port, token, args, mode=mode, batch=batch, server=server)
        figures["drain"] = {"seconds": queue_drain(port)}
    finally:
        stop(server)
    return figures


def _spread(values: list[float], fmt: str) -> str:
    """The median, and the range when there are several values."""
    middle = format(statistics.median(values), fmt)
    if len(values) < 2:
        return middle
    return f"{middle} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def ab_compare(args: argparse.Namespace) -> str:
    """``--ab REF``: the bare endpoint, the service at ``REF`` and this checkout's, from
    outside with wrk, SQLite, ``--rounds`` rounds alternating which code goes first; a
    markdown table of medians (ranges) and the targets' verdicts."""
    if shutil.which("wrk") is None:
        raise SystemExit("--ab needs wrk (apt-get install wrk)")
    other = _worktree(args.ab)
    try:
        if _migrations(other) != _migrations(ROOT):
            raise SystemExit(f"{args.ab} has other migrations: compare on one schema")
        template = Path(tempfile.mkdtemp(prefix="relgov-ab-template-")) / "b.db"
        token = prepare_database(f"sqlite:///{template}")
        here, there = _commit(ROOT), _commit(other)
        codes = {f"{args.ab} ({there})": other, f"this checkout ({here})": ROOT}
        bare: list[dict[str, float]] = []
        results: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in codes}
        for round_ in range(args.rounds):
            load = Path("/proc/loadavg").read_text().split()[:3]
            print(f"== round {round_ + 1} of {args.rounds} (load {' '.join(load)})", flush=True)
            bare.append(_ab_bare(args))
            print(
                f"   bare: {bare[-1]['requests_per_s']:.0f} req/s, p99 {bare[-1]['p99_ms']:.1f} ms",
                flush=True,
            )
            order = list(codes) if round_ % 2 == 0 else list(reversed(codes))
            for name in order:
                got = _ab_service(codes[name], template, token, args)
                results[name].append(got)
                bad = sum(
                    got[k]["not_2xx"] + got[k]["socket_errors"] for k in ("single", "real", "batch")
                )
                print(
                    f"   {name}: single {got['single']['requests_per_s']:.0f} req/s "
                    f"({got['single']['requests_per_s'] / bare[-1]['requests_per_s']:.0%} of "
                    f"bare, p99 {got['single']['p99_ms']:.1f} ms, "
                    f"{got['single']['cpu_ms']:.2f} ms worker CPU each), known devices "
                    f"{got['real']['requests_per_s']:.0f} req/s "
                    f"(p99 {got['real']['p99_ms']:.1f} ms), batches "
                    f"{got['batch']['items_per_s']:.0f} heartbeats/s "
                    f"(p99 {got['batch']['p99_ms']:.0f} ms, {got['batch']['cpu_ms']:.0f} ms "
                    "worker CPU each), queue empty "
                    f"{got['drain']['seconds']:.2f} s after; not 2xx or socket errors: {bad}",
                    flush=True,
                )
    finally:
        _drop_worktree(other)

    bare_rates = [b["requests_per_s"] for b in bare]
    rows = [
        f"| bare Flask endpoint | {_spread(bare_rates, ',.0f')} | 100 % "
        f"| {_spread([b['p99_ms'] for b in bare], '.1f')} "
        f"| {_spread([b['cpu_ms'] for b in bare], '.2f')} | — | — | — | — | — |"
    ]
    verdicts = []
    for name, runs in results.items():
        shares = [r["single"]["requests_per_s"] / b for r, b in zip(runs, bare_rates, strict=True)]
        real_shares = [
            r["real"]["requests_per_s"] / b for r, b in zip(runs, bare_rates, strict=True)
        ]
        batches = [r["batch"]["items_per_s"] for r in runs]
        errors = sum(
            r[k]["not_2xx"] + r[k]["socket_errors"]
            for r in runs
            for k in ("single", "real", "batch")
        )
        rows.append(
            f"| {name} | {_spread([r['single']['requests_per_s'] for r in runs], ',.0f')} "
            f"| {_spread(shares, '.0%')} "
            f"| {_spread([r['single']['p99_ms'] for r in runs], '.1f')} "
            f"| {_spread([r['single']['cpu_ms'] for r in runs], '.2f')} "
            f"| {_spread(real_shares, '.0%')} "
            f"| {_spread([r['real']['p99_ms'] for r in runs], '.1f')} "
            f"| {_spread(batches, ',.0f')} "
            f"| {_spread([r['batch']['cpu_ms'] for r in runs], '.0f')} | {errors} |"
        )
        share, batch = statistics.median(shares), statistics.median(batches)
        verdicts.append(
            f"- {name}: single heartbeats {share:.0%} of bare "
            f"({'✓' if share >= 0.8 else '✗'} target 80 %), batches {batch:,.0f} heartbeats/s "
            f"({'✓' if batch >= 20_000 else '✗'} target 20,000/s)"
        )
    return "\n".join(
        [
            f"`{COMMAND} --ab {args.ab} --rounds {args.rounds} --seconds {args.seconds:g}` "
            f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC): wrk ({args.wrk_threads} threads, "
            f"{args.wrk_connections} connections, {args.seconds:g} s a run after 2 s of "
            "warm-up) against gunicorn with the production defaults (2 sync workers, "
            "heartbeats queued every 50 ms) on a fresh copy of one SQLite file (2,000 stores, "
            "20,000 devices); rounds alternate which code goes first, each round measures "
            "the bare endpoint again; medians over the rounds (range); share = the run's "
            "rate over its round's bare rate; worst case: every heartbeat a new version; "
            "batches: 1,000 heartbeats a request; worker CPU: the gunicorn workers' CPU time "
            "over the run (database aside), which other load on the machine disturbs far less "
            "than the rates.",
            "",
            "| code | single heartbeats req/s | share of bare | p99 ms "
            "| worker CPU ms per request | known devices: share | known devices: p99 ms "
            "| batched heartbeats/s | worker CPU ms per 1,000 | answers not 2xx |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            *verdicts,
            "",
        ]
    )


def write_part(text: str) -> None:
    """Replace ``PART`` inside ``SECTION`` of docs/benchmarks.md (re-read just before)."""
    doc = DOC.read_text()
    if SECTION not in doc:
        doc = doc.rstrip("\n") + f"\n\n{SECTION}\n"
    start = doc.index(SECTION)
    nxt = doc.find("\n## ", start + len(SECTION))
    end = len(doc) if nxt == -1 else nxt + 1
    section = doc[start:end]
    text = text.rstrip("\n") + "\n" + END + "\n\n"
    if PART in section:
        # The output ends at END; notes written under it (earlier rounds) stay.
        p_start = section.index(PART)
        p_marker = section.find(END, p_start)
        p_next = section.find("\n### ", p_start + len(PART))
        if p_marker != -1 and (p_next == -1 or p_marker < p_next):
            p_end = section.find("\n", p_marker) + 1
            while section[p_end : p_end + 1] == "\n":
                p_end += 1
        else:
            p_end = len(section) if p_next == -1 else p_next + 1
        section = section[:p_start] + text + section[p_end:]
    else:
        section = section.rstrip("\n") + "\n\n" + text
    if not section.endswith("\n"):
        section += "\n"
    DOC.write_text(
        doc[:start]
        + section
        + ("\n" if nxt != -1 and not section.endswith("\n\n") else "")
        + doc[end:]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4, help="driver processes")
    parser.add_argument(
        "--limit-cost", action="store_true", help="also run with the rate limit off"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--wrk", action="store_true", help="also measure singles with wrk")
    parser.add_argument("--wrk-only", action="store_true", help="only the wrk runs (no write)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=8)
    parser.add_argument(
        "--ab", metavar="REF", help="only: wrk A/B of REF (a temporary worktree) and this checkout"
    )
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds (--ab)")
    args = parser.parse_args()
    pg = os.environ.get("RELGOV_BENCH_PG_URL", "")
    if args.ab:
        print(ab_compare(args))
        return
    if args.wrk_only:
        print(wrk_table(args, wrk_compare(args, pg)))
        return

    tmp = Path(tempfile.mkdtemp(prefix="relgov-bare-"))
    (tmp / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    server = start_gunicorn("bare_app:app", port, os.environ | {"PYTHONPATH": str(tmp)}, tmp)
    try:
        run_load(port, "", batch=1, seconds=2, clients=args.clients)
        bare = run_load(
            port, "", batch=1, seconds=args.seconds, clients=args.clients, server=server
        )
    finally:
        stop(server)
    print(
        f"bare Flask endpoint: {bare['requests_per_s']:.0f} req/s (p99 {bare['p99_ms']:.1f} ms, "
        f"{bare['cpu_ms']:.2f} ms worker CPU each)"
    )

    rows = [
        f"| bare Flask endpoint (ceiling) | {bare['requests_per_s']:,.0f} | {bare['p99_ms']:.1f} "
        f"| 100 % | {bare['cpu_ms']:.2f} | — | — | — |"
    ]
    db_dir = Path(tempfile.mkdtemp(prefix="relgov-hb-db-"))
    sqlite = f"sqlite:///{db_dir / 'bench.db'}"
    rows += bench_database("SQLite (WAL file), queued", sqlite, args, bare)
    sync = f"sqlite:///{db_dir / 'bench-sync.db'}"
    rows += bench_database("SQLite, each request writes", sync, args, bare, flush_ms="0")
    if args.limit_cost:
        url = f"sqlite:///{db_dir / 'bench-nolimit.db'}"
        rows += bench_database("SQLite, queued, rate limit off", url, args, bare, limit="0")
    if pg:
        fresh = "relgov_bench"  # made afresh for every run
        rows += bench_database("PostgreSQL 15, queued", create_database(pg, fresh), args, bare)
        rows += bench_database(
            "PostgreSQL, each request writes", create_database(pg, fresh), args, bare, flush_ms="0"
        )
        if args.limit_cost:
            rows += bench_database(
                "PostgreSQL, queued, rate limit off", create_database(pg, fresh), args, bare, "0"
            )
    else:
        print("PostgreSQL skipped (set RELGOV_BENCH_PG_URL)")

    text = "\n".join(
        [
            PART,
            "",
            f"`{COMMAND}` ({datetime.now(UTC):%Y-%m-%d}; gunicorn 2 sync workers on loopback, "
            f"{args.clients} driver processes for {args.seconds:g} s each run, fleet of "
            f"{STORES:,} stores; every single heartbeat a new `sent_at`, so each one writes; "
            "rates over the drive plus the wait until no queued heartbeat was left; "
            "*queued* = the production default `RELGOV_HEARTBEAT_FLUSH_MS=50`, *each request "
            "writes* = `0`; batches on the *known devices* rows: 1,000 known devices a "
            "request, 1 heartbeat in 100 a change; worker CPU = the gunicorn workers' CPU "
            "time per request, database server excluded; the rate limit counts every request "
            f"(`RELGOV_HEARTBEAT_RATE_LIMIT={LIMIT}`); every device's newest heartbeat "
            "answered 2xx was found stored).",
            "",
            "| server, traffic | single heartbeats req/s | p99 ms | share of bare "
            "| worker CPU ms per request | batched heartbeats/s | p99 ms per 1,000 "
            "| worker CPU ms per 1,000 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    if args.wrk:
        text += "\n" + wrk_table(args, wrk_compare(args, pg))
    print(text)
    if not args.no_write:
        write_part(text)


if __name__ == "__main__":
    main()
