"""Realistic demo git repositories for the store apps (``make run``), built offline.

Weeks of conventional commits with PR numbers in squash subjects, ``Release-Note:`` trailers
written for store staff, co-authors, a breaking change, a revert pair, dependabot bumps, a
direct push without a PR, one tag per weekly train and a hotfix on a release branch. The
history is streamed into ``git fast-import`` (a bare repository), so building one takes a
fraction of a second; commit and tag dates are spread over the past weeks in JST.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

__all__ = ["APP_PROFILES", "DemoRepo", "DemoTag", "build_demo_repo"]

JST = timezone(timedelta(hours=9), "JST")
PEOPLE = [
    ("Haruka Sato", "haruka.sato@example.com"),
    ("Daichi Ito", "daichi.ito@example.com"),
    ("Mei Tanaka", "mei.tanaka@example.com"),
    ("Kenji Watanabe", "kenji.watanabe@example.com"),
    ("Priya Nair", "priya.nair@example.com"),
    ("Lucas Moreau", "lucas.moreau@example.com"),
    ("Yui Kobayashi", "yui.kobayashi@example.com"),
]
DEPENDABOT = ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")


@dataclass(frozen=True)
class DemoTag:
    name: str  # v3.12.0
    version: str  # 3.12.0
    at: datetime  # aware UTC
    kind: str  # weekly | hotfix


@dataclass
class DemoRepo:
    path: Path
    tags: list[DemoTag] = field(default_factory=list)
    commits: int = 0


# Per app: first version, scopes, and the store-facing changes each weekly train carries.
# A line is "type(scope): subject"; "|" adds a Release-Note for store staff.
APP_PROFILES: dict[str, dict[str, object]] = {
    "pos": {
        "major": 3,
        "first_minor": 10,
        "pr_start": 1402,
        "weeks": [
            [
                (
                    "feat(order): split a bill evenly between guests|"
                    "Tap Split on the bill screen to divide it between 2–8 guests."
                ),
                "fix(payment): card reader timeout no longer leaves the order locked",
                "perf(menu): load the menu from the local cache on start-up",
                "test(order): cover split bills with discounts",
            ],
            [
                (
                    "feat(table): merge two tables into one check|"
                    "Drag one table onto another to merge their orders; the server can undo it "
                    "for 5 minutes."
                ),
                "fix(printer): receipts no longer cut mid-line on TM-m30III",
                "fix(sync): retry menu sync after the store Wi-Fi comes back",
                "refactor(payment): move tip rounding into one module",
                "docs(printer): supported printer models",
            ],
            [
                (
                    "feat(sync)!: sync orders over the new v2 endpoint|"
                    "Requires the store hub 2.0 or later; stores on hub 1.x must update first."
                ),
                (
                    "feat(auth): staff PIN lock after 3 minutes idle|"
                    "The register locks after 3 idle minutes; staff unlock it with their PIN."
                ),
                "fix(order): modifiers keep their order when an item is copied",
                "perf(kds): send only changed tickets to the kitchen display",
                "ci: cache the Android build between jobs",
            ],
            [
                (
                    "feat(payment): QR code payments with PayPay|"
                    "Guests can pay by scanning a PayPay QR code shown on the customer display."
                ),
                "fix(menu): sold-out badge clears at the start of the next business day",
                "fix(table): table map keeps its zoom after an order is sent",
                "test(payment): contract tests for the QR payment gateway",
            ],
            [
                "feat(menu): show allergens on the item card",
                (
                    "fix(printer): kitchen tickets print the table name in large type|"
                    "Table names on kitchen tickets are now printed twice as large."
                ),
                "refactor(sync): one queue for orders and payments",
                "fix(auth): manager override works on a locked register",
            ],
            [
                (
                    "feat(order): course firing for set menus|"
                    "Servers can hold courses and fire them to the kitchen one by one."
                ),
                "fix(payment): refunds of split bills refund the right guest",
                "perf(order): open a table with 80+ items in under a second",
                "docs: release checklist for store rollouts",
            ],
            [
                (
                    "feat(table): waiting list with SMS when a table is ready|"
                    "Front staff can add walk-in guests to a waiting list; guests get an SMS when "
                    "their table is ready."
                ),
                "fix(kds): recalled tickets show the original order time",
                "fix(sync): duplicate orders after a network flap",
                "refactor(menu): typed menu schema",
            ],
            [
                (
                    "feat(payment): tip suggestions at 5, 10 and 15 %|"
                    "The card terminal suggests tips of 5, 10 and 15 %; stores can turn this off "
                    "in settings."
                ),
                "fix(order): seat numbers survive moving an order to another table",
                "perf(printer): print receipts while the payment settles",
                "test(sync): offline mode soak test",
            ],
        ],
        "hotfix_after_week": 2,
        "hotfix": (
            "fix(payment): card payments declined when the tip is zero|"
            "Card payments without a tip were declined since 3.12.0; fixed."
        ),
        "revert_week": 5,  # the allergen card (week 4) is reverted in week 5
        "no_pr_week": 7,
        "no_pr": "fix(printer): hotfix paper-out detection on the kitchen printer",
    },
    "handy": {
        "major": 2,
        "first_minor": 4,
        "pr_start": 610,
        "weeks": [
            [
                (
                    "feat(order): repeat the last round with one tap|"
                    "Tap Repeat on a table to order the last round of drinks again."
                ),
                "fix(sync): orders queued offline are sent in order",
            ],
            [
                (
                    "feat(menu): search the menu by reading|"
                    "Search also matches the reading in hiragana."
                ),
                "fix(auth): battery saver no longer logs staff out",
                "ci: run UI tests on the handheld emulator",
            ],
            [
                "feat(table): see which seats still have no order",
                "fix(order): notes longer than 40 characters are no longer cut",
                "perf(sync): smaller payloads on 4G",
            ],
            [
                (
                    "feat(payment): take card payments at the table|"
                    "Handhelds with a card reader can take payment at the table."
                ),
                "fix(menu): item photos load on slow Wi-Fi",
            ],
            [
                (
                    "feat(kds): see when a dish is ready|"
                    "The handheld vibrates when the kitchen marks a dish ready."
                ),
                "fix(payment): receipts print on the nearest printer",
            ],
        ],
        "hotfix_after_week": None,
        "revert_week": None,
        "no_pr_week": None,
    },
    "kds": {
        "major": 1,
        "first_minor": 8,
        "pr_start": 245,
        "weeks": [
            [
                "feat(kds): bump a ticket to the pass with a swipe",
                "fix(kds): timers keep running after the screen sleeps",
            ],
            [
                (
                    "feat(kds): colour tickets older than 10 minutes|"
                    "Tickets waiting more than 10 minutes turn orange, more than 15 red."
                ),
                "fix(printer): chit printer reconnects after power loss",
                "test(kds): ticket layout snapshots",
            ],
            [
                (
                    "feat(kds): all-day counts per station|"
                    "Each station sees how many of each dish are still to cook."
                ),
                "fix(sync): tickets no longer appear twice after a reconnect",
            ],
            [
                (
                    "feat(kds): allergy warnings in red on the ticket|"
                    "Allergy notes are shown in red at the top of the ticket."
                ),
                "perf(kds): render 200 open tickets smoothly",
            ],
        ],
        "hotfix_after_week": None,
        "revert_week": None,
        "no_pr_week": None,
    },
}

DEPENDENCY_BUMPS = [
    ("axios", "1.6.8", "1.7.2"),
    ("react-native", "0.73.6", "0.74.1"),
    ("@sentry/react-native", "5.20.0", "5.22.0"),
    ("kotlinx-coroutines", "1.8.0", "1.8.1"),
]


class _Stream:
    """Collects a git fast-import stream; ``flush`` imports what is collected so far."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env
        self.parts: list[bytes] = []
        self.mark = 0
        self.marks_file = path / "demo-import.marks"
        self.tips: dict[str, int] = {}

    def data(self, text: str) -> None:
        raw = text.encode()
        self.parts.append(b"data %d\n" % len(raw) + raw + b"\n")

    def commit(
        self,
        branch: str,
        *,
        author: tuple[str, str],
        at: datetime,
        message: str,
        files: dict[str, str],
        parent: int | None = None,
        merge: int | None = None,
    ) -> int:
        self.mark += 1
        stamp = f"{int(at.timestamp())} +0900"
        self.parts.append(
            f"commit refs/heads/{branch}\nmark :{self.mark}\n"
            f"author {author[0]} <{author[1]}> {stamp}\n"
            f"committer {author[0]} <{author[1]}> {stamp}\n".encode()
        )
        self.data(message)
        start = parent if parent is not None else self.tips.get(branch)
        if start is not None:
            self.parts.append(f"from :{start}\n".encode())
        if merge is not None:
            self.parts.append(f"merge :{merge}\n".encode())
        for name, content in files.items():
            self.parts.append(f"M 100644 inline {name}\n".encode())
            self.data(content)
        self.parts.append(b"\n")
        self.tips[branch] = self.mark
        return self.mark

    def tag(self, name: str, mark: int) -> None:
        self.parts.append(f"reset refs/tags/{name}\nfrom :{mark}\n\n".encode())

    def flush(self) -> None:
        if not self.parts:
            return
        subprocess.run(
            [
                "git",
                "fast-import",
                "--quiet",
                f"--import-marks-if-exists={self.marks_file}",
                f"--export-marks={self.marks_file}",
            ],
            cwd=self.path,
            env=self.env,
            input=b"".join(self.parts),
            check=True,
            capture_output=True,
        )
        self.parts = []

    def sha(self, mark: int) -> str:
        self.flush()
        for line in self.marks_file.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == f":{mark}":
                return value
        raise KeyError(mark)


def _parse_line(line: str) -> tuple[str, str | None]:
    header, _, note = line.partition("|")
    return header, note or None


def build_demo_repo(
    path: Path, slug: str, *, now: datetime | None = None, seed: int | None = None
) -> DemoRepo:
    """(Re)build the demo repository of ``slug`` at ``path`` (a bare repository)."""
    profile = APP_PROFILES[slug]
    now = (now or datetime.now(UTC)).astimezone(JST)
    rng = random.Random(seed if seed is not None else slug)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # child process environment
        "HOME": tempfile.gettempdir(),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(path)],
        env=env,
        check=True,
        capture_output=True,
    )
    stream = _Stream(path, env)
    result = DemoRepo(path=path)
    weeks: list[list[str]] = profile["weeks"]  # type: ignore[assignment]
    major = int(profile["major"])  # type: ignore[call-overload]
    first_minor = int(profile["first_minor"])  # type: ignore[call-overload]
    pr = int(profile["pr_start"])  # type: ignore[call-overload]
    files: dict[str, list[str]] = {}

    def touch(scope: str, line: str) -> dict[str, str]:
        name = f"src/{scope}/changes.md" if scope else "README.md"
        files.setdefault(name, [f"# {scope or slug}\n"]).append(f"- {line}\n")
        return {name: "".join(files[name])}

    def message_for(header: str, note: str | None, number: int | None, extra: str = "") -> str:
        subject = header + (f" (#{number})" if number is not None else "")
        body = [extra] if extra else []
        trailers = []
        if "!" in header.split(":")[0]:
            body.append(
                "BREAKING CHANGE: the store hub must run 2.0 or later; hubs on 1.x reject "
                "orders from this version."
            )
        if note:
            trailers.append(f"Release-Note: {note}")
        if rng.random() < 0.25:
            name, email = rng.choice(PEOPLE)
            trailers.append(f"Co-authored-by: {name} <{email}>")
        return "\n\n".join([subject, *body, *(["\n".join(trailers)] if trailers else [])]) + "\n"

    # Root commit well before the first train.
    first_week_start = now - timedelta(weeks=len(weeks))
    stream.commit(
        "main",
        author=PEOPLE[0],
        at=first_week_start - timedelta(days=3),
        message=f"chore: {slug} app skeleton\n",
        files=touch("", "skeleton"),
    )
    # The version before the demo weeks, so the first train has a previous tag to start from.
    stream.tag(f"v{major}.{first_minor - 1}.0", stream.tips["main"])
    reverted: tuple[int, str] | None = None
    hotfix: tuple[str, int] | None = None
    for index, lines in enumerate(weeks):
        cut = (now - timedelta(weeks=len(weeks) - 1 - index)).replace(
            hour=18, minute=0, second=0, microsecond=0
        )
        # The cut happens on the Tuesday before the Wednesday train, never in the future.
        cut -= timedelta(days=(cut.weekday() - 1) % 7)
        cut = min(cut, now - timedelta(hours=2))
        entries: list[tuple[str, str | None, bool, str]] = [
            (*_parse_line(line), True, "") for line in lines
        ]
        if index % 2 == 1:
            package, old, new = DEPENDENCY_BUMPS[(index // 2) % len(DEPENDENCY_BUMPS)]
            entries.insert(
                rng.randrange(len(entries) + 1),
                (f"chore(deps): bump {package} from {old} to {new}", None, True, "bot"),
            )
        if profile.get("revert_week") == index and reverted is not None:
            entries.append(("revert", None, True, "revert"))
        if profile.get("no_pr_week") == index:
            entries.append((str(profile["no_pr"]), None, False, ""))
        span = timedelta(days=6, hours=20)
        if hotfix is not None:
            # The hotfix branch is merged back, so the next train's range starts from it.
            branch, hotfix_mark = hotfix
            stream.commit(
                "main",
                author=PEOPLE[1],
                at=cut - span + timedelta(hours=3),
                message=f"Merge pull request #{pr} from example-restaurant/{branch}\n\n"
                f"Hotfix {branch.split('/')[1]}.1 back into main\n",
                files=touch("payment", f"merge {branch}"),
                merge=hotfix_mark,
            )
            pr += 1
            result.commits += 1
            hotfix = None
        for position, (header, note, with_pr, special) in enumerate(entries):
            at = cut - span + span * (position + 1) / (len(entries) + 1)
            at += timedelta(minutes=rng.randrange(-50, 50))
            author = rng.choice(PEOPLE)
            scope = header.split("(")[1].split(")")[0] if "(" in header.split(":")[0] else ""
            number = pr if with_pr else None
            if with_pr:
                pr += 1
            if special == "bot":
                author = DEPENDABOT
                text = message_for(
                    header,
                    None,
                    number,
                    f"Bumps {header.split('bump ')[1].split(' from')[0]} to its latest "
                    "patch release.\n\nSigned-off-by: dependabot[bot] <support@github.com>",
                )
                text = text.split("\n\nCo-authored-by")[0].rstrip("\n") + "\n"
                scope = "deps"
            elif special == "revert" and reverted is not None:
                mark, original = reverted
                sha = stream.sha(mark)
                text = (
                    f'Revert "{original}" (#{number})\n\nThis reverts commit {sha}.\n\n'
                    "The allergen card overlapped the price on 8-inch registers.\n"
                )
                scope = "menu"
            else:
                text = message_for(header, note, number)
            mark = stream.commit(
                "main", author=author, at=at, message=text, files=touch(scope, header)
            )
            result.commits += 1
            if slug == "pos" and header.startswith("feat(menu): show allergens"):
                reverted = (mark, f"{header} (#{number})")
        minor = first_minor + index
        version = f"{major}.{minor}.0"
        stream.tag(f"v{version}", stream.tips["main"])
        result.tags.append(DemoTag(f"v{version}", version, cut.astimezone(UTC), "weekly"))
        if profile.get("hotfix_after_week") == index:
            hotfix_header, hotfix_note = _parse_line(str(profile["hotfix"]))
            at = cut + timedelta(days=2, hours=-6)
            at = min(at, now - timedelta(hours=1))
            branch = f"release/{major}.{minor}"
            stream.commit(
                branch,
                author=PEOPLE[1],
                at=at,
                message=message_for(hotfix_header, hotfix_note, pr),
                files=touch("payment", hotfix_header),
                parent=stream.tips["main"],
            )
            pr += 1
            result.commits += 1
            hotfix = (branch, stream.tips[branch])
            hotfix_version = f"{major}.{minor}.1"
            stream.tag(f"v{hotfix_version}", stream.tips[branch])
            result.tags.append(
                DemoTag(
                    f"v{hotfix_version}",
                    hotfix_version,
                    (at + timedelta(hours=1)).astimezone(UTC),
                    "hotfix",
                )
            )
    stream.flush()
    stream.marks_file.unlink(missing_ok=True)
    return result
