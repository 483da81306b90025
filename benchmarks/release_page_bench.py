"""Benchmark: the release page a release manager decides from, and registering a candidate
now that its git ref is resolved first (issue 18, item 6 and 10).

Seeds the demo (300 stores, 1,018 devices, 18 releases) into a SQLite file, then, in this
process with Flask's test client (server-side time only, no network):

- ``GET /releases/{id}`` as the release manager for a release in review, in beta (gates
  failing) and rolling out (the confirmation steps count the fleet's stores): median and
  p95 over ``--requests`` requests each;
- ``POST /api/v1/releases`` with a CI token: a new version at a tag of a local repository
  (``git rev-parse``), at a tag of a ``file://`` remote (``git ls-remote``), and a typo
  answered 422 (nothing created): median and p95 over ``--registrations`` each.

    .venv/bin/python benchmarks/release_page_bench.py [--requests 40] [--registrations 15]
        [--no-write]

Writes the ``## Release page and registration`` section of ``docs/benchmarks.md``.
Targets: the release page under 150 ms at the median; registering under 100 ms at the
median plus git's own time (no clone, no fetch).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import percentile, write_section  # noqa: E402

SECTION = "## Release page and registration"
COMMAND = ".venv/bin/python benchmarks/release_page_bench.py"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def _timed(call, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--registrations", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from sqlmodel import Session, select

    from service import db
    from service.app import create_app
    from service.auth import issue_token
    from service.demo import DEMO_PASSWORD, seed_demo
    from service.migrate import upgrade
    from service.models import User
    from service.releases.models import App, Release
    from service.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="relgov-release-page-"))
    settings = Settings(
        env="test",
        instance_path=folder / "instance",
        database_url=f"sqlite:///{folder / 'bench.db'}",
        secret_key="benchmark-secret-key-0123456789-abcdefghij",
        repo_cache=folder / "repos",
        repo_root=folder,
    )
    app = create_app(settings)
    upgrade(app.extensions["relgov.engine"])
    seed_demo(app)
    engine = db.make_engine(settings.database_url, sqlite_transactions=False)
    with Session(engine, expire_on_commit=False) as session:
        by_state = {}
        for release in session.exec(select(Release).order_by(Release.id)).all():  # type: ignore[arg-type]
            by_state.setdefault(release.state, release)
        admin = session.exec(select(User).where(User.role == "admin")).first()
        assert admin is not None
        _, raw = issue_token(
            session=session, name="bench-ci", scopes=["releases:write"], creator=admin
        )
        pos = session.exec(select(App).where(App.slug == "pos")).one()
        local_repo = pos.repo_url
        kds = session.exec(select(App).where(App.slug == "kds")).one()
        kds.repo_url = f"file://{kds.repo_url}"
        session.add(kds)
        session.commit()
        tags = {
            slug: sorted(
                {
                    r.git_ref
                    for r in session.exec(select(Release).join(App).where(App.slug == slug)).all()
                }
            )  # type: ignore[arg-type]
            for slug in ("pos", "kds")
        }

    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = CSRF.search(page)
    assert token
    client.post(
        "/login",
        data={"email": "rm@example.com", "password": DEMO_PASSWORD, "csrf_token": token.group(1)},
    )
    rows = []
    for state in ("in_review", "beta", "rolling_out"):
        release = by_state[state]
        url = f"/releases/{release.id}"
        assert client.get(url).status_code == 200
        times = _timed(lambda url=url: client.get(url), args.requests)
        rows.append((f"release page, {state.replace('_', ' ')} ({release.version})", times))

    headers = {"Authorization": f"Bearer {raw}"}
    counter = iter(range(1, 10_000))

    def register(slug: str, ref: str, expect: int) -> None:
        body = {"app": slug, "version": f"9.{next(counter)}.0", "git_ref": ref}
        answer = client.post("/api/v1/releases", json=body, headers=headers)
        assert answer.status_code == expect, answer.json

    pos_tag, kds_tag = tags["pos"][-1], tags["kds"][-1]
    rows.append(
        (
            "register at a tag, local repository (rev-parse)",
            _timed(lambda: register("pos", pos_tag, 201), args.registrations),
        )
    )
    rows.append(
        (
            "register at a tag, file:// remote (ls-remote)",
            _timed(lambda: register("kds", kds_tag, 201), args.registrations),
        )
    )
    rows.append(
        (
            "register at a typo, refused 422, nothing created",
            _timed(lambda: register("pos", pos_tag + "x", 422), args.registrations),
        )
    )
    lines = [
        SECTION,
        "",
        f"`{COMMAND}` ({date.today().isoformat()}; the demo data in a SQLite file, Flask's test "
        "client in one process: server-side time, no network; the local repository is the demo's "
        f"{Path(local_repo).name}). Targets: the page under 150 ms at the median; registering "
        "under 100 ms at the median besides git's own time.",
        "",
        "| what | n | median | p95 |",
        "|---|---:|---:|---:|",
    ]
    for name, times in rows:
        median, p95 = percentile(times, 50), percentile(times, 95)
        lines.append(f"| {name} | {len(times)} | {median:.1f} ms | {p95:.1f} ms |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    engine.dispose()
    app.extensions["relgov.engine"].dispose()


if __name__ == "__main__":
    main()
