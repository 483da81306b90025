"""Update answer latency at 20,000 stores: service time through Flask, and the pure decision.

Builds a fresh migrated SQLite database in a temporary folder with N stores (5 % in beta),
3 devices per store, an app with a released version, a beta and a rolling-out release, and a
few freezes; warms the per-process snapshot; then times ``GET /api/v1/apps/pos/update``
through the Flask test client (token check, counter check, snapshot lookup, decision, JSON)
and ``FleetSnapshot.decide`` alone. Writes the ``## Update answer`` section of
``docs/benchmarks.md``.

    .venv/bin/python benchmarks/update_answer_bench.py [--stores 20000] [--requests 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import percentile, write_section  # noqa: E402

SECTION = "## Update answer"


def run(stores: int, requests: int) -> dict[str, object]:
    from sqlmodel import Session

    from beta import store as fleet
    from service import db, migrate
    from service.app import create_app
    from service.beta.answers import answers, bump
    from service.models import utcnow
    from service.releases.models import App
    from service.settings import Settings
    from tests.builders import add_release, make_token, make_user
    from tests.fleet_builders import freeze
    from version_monitor.simulate import build_fleet

    folder = Path(tempfile.mkdtemp(prefix="relgov-bench-"))
    settings = Settings(
        env="test",
        instance_path=folder / "instance",
        database_url=f"sqlite:///{folder}/bench.db",
        secret_key="benchmark-secret-key-that-is-long-enough-0123456789",
        repo_cache=folder / "repos",
    )
    app = create_app(settings)
    engine = app.extensions["relgov.engine"]
    migrate.upgrade(engine)
    now = utcnow()
    started = time.perf_counter()
    with Session(engine) as session:
        build_fleet(
            session, stores=stores, devices=stores * 3, now=now.replace(tzinfo=None), prefix="B"
        )
        bump(session)  # bulk inserts bypass the ORM listener
        pos = App(slug="pos", name="POS register", min_supported_version="3.0.0")
        session.add(pos)
        session.flush()
        assert pos.id is not None
        add_release(session, pos, "3.11.0", "released", stage_percent=100)
        add_release(session, pos, "3.12.0", "rolling_out", stage_percent=50)
        add_release(session, pos, "3.13.0", "beta", stage_percent=0)
        for n in range(1, 41):
            store = fleet.get_store(session=session, external_id=f"B{n * (stores // 40):05d}")
            assert store is not None
            freeze(session, store, now, reason="benchmark freeze", days=2, actor="bench")
        user = make_user(session, email="bench@example.com", name="Bench")
        raw = make_token(session, creator=user, scopes=["heartbeats:write"], name="devices")
    seeded = time.perf_counter() - started

    wsgi_times: list[float] = []
    inner = app.wsgi_app

    def timed(environ, start_response):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter_ns()
        try:
            return inner(environ, start_response)
        finally:
            wsgi_times.append((time.perf_counter_ns() - t0) / 1e6)

    app.wsgi_app = timed  # type: ignore[method-assign]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {raw}"}
    rng = random.Random(7)
    ids = [f"B{n:05d}" for n in range(1, stores + 1)]
    versions = ["3.11.0", "3.12.0", "2.9.0", "3.13.0"]
    queries = [
        {"store_id": rng.choice(ids), "current_version": rng.choice(versions)}
        for _ in range(requests)
    ]
    cold_started = time.perf_counter()
    first = client.get("/api/v1/apps/pos/update", query_string=queries[0], headers=headers)
    cold = time.perf_counter() - cold_started
    assert first.status_code == 200, first.get_data(as_text=True)
    for query in queries[:500]:  # warm up
        client.get("/api/v1/apps/pos/update", query_string=query, headers=headers)

    with app.app_context():
        builds_before = answers().builds
    service_times = []
    wsgi_times.clear()
    for query in queries:
        t0 = time.perf_counter_ns()
        response = client.get("/api/v1/apps/pos/update", query_string=query, headers=headers)
        service_times.append((time.perf_counter_ns() - t0) / 1e6)
        assert response.status_code == 200
    with app.app_context():
        assert answers().builds == builds_before, "the snapshot was rebuilt while warm"
        with db.session_scope() as session:
            snapshot = answers().snapshot(session)
    reasons: dict[str, int] = {}
    decide_times = []
    moment = datetime.now(UTC)
    for query in queries:
        t0 = time.perf_counter_ns()
        answer = snapshot.decide(
            app="pos",
            store_id=query["store_id"],
            current_version=query["current_version"],
            now=moment,
        )
        decide_times.append((time.perf_counter_ns() - t0) / 1e6)
        reasons[answer.reason] = reasons.get(answer.reason, 0) + 1
    engine.dispose()
    return {
        "stores": stores,
        "devices": stores * 3,
        "requests": requests,
        "seeded_s": seeded,
        "cold_ms": cold * 1000,
        "client": (percentile(service_times, 50), percentile(service_times, 99)),
        "service": (percentile(wsgi_times, 50), percentile(wsgi_times, 99)),
        "service_mean": statistics.fmean(wsgi_times),
        "decide": (percentile(decide_times, 50), percentile(decide_times, 99)),
        "reasons": reasons,
    }


def section(result: dict[str, object]) -> str:
    service = result["service"]
    client = result["client"]
    decide = result["decide"]
    assert isinstance(service, tuple) and isinstance(decide, tuple) and isinstance(client, tuple)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(result["reasons"].items()))  # type: ignore[attr-defined]
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured with `.venv/bin/python benchmarks/update_answer_bench.py` on "
            f"{datetime.now(UTC):%Y-%m-%d}: a fresh migrated SQLite database with "
            f"{result['stores']:,} stores (5 % in beta), {result['devices']:,} devices, 40 "
            "frozen stores, and an app with a released version, a release rolling out at "
            f"50 % and a beta. {result['requests']:,} requests for random stores and versions "
            f"(answers: {reasons}). Python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f} when it finished (other jobs share the machine, "
            "which shows in the p99).",
            "",
            "| what | p50 | p99 |",
            "|---|---:|---:|",
            f"| service time of `GET /api/v1/apps/pos/update`, warm: the Flask app from "
            f"WSGI call to response (token check, counter check, snapshot lookup, decision, "
            f"JSON, metrics, teardown) | {service[0]:.3f} ms | {service[1]:.3f} ms |",
            f"| the same request as the test client sees it (adds building the request "
            f"and reading the response) | {client[0]:.3f} ms | {client[1]:.3f} ms |",
            f"| `FleetSnapshot.decide` alone (the pure decision on a warm snapshot) | "
            f"{decide[0] * 1000:.1f} µs | {decide[1] * 1000:.1f} µs |",
            "",
            f"Cold: the first request after a change rebuilds the snapshot of "
            f"{result['stores']:,} stores in {result['cold_ms']:,.0f} ms (once per process "
            "per change). The warm loop asserts that no rebuild happened.",
            "",
            "Warm means no query at all: the token comes from the per-process token cache "
            "(5 s; a revocation made in the same process clears it at once, one made in "
            "another worker takes up to 5 s there) and the fleet counter is read at most "
            "every 0.25 s per process (a fleet change committed in the same process is seen "
            "by its next request, one committed in another worker within 0.25 s). Before "
            "those two caches (2026-11-28, same machine, load 2.7): p50 0.526 ms, p99 "
            "4.894 ms of service time.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stores", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    text = section(run(args.stores, args.requests))
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
