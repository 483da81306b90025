"""generate_for_range / CLI against real repositories built in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from release_notes.cli import generate, main, notes_cli
from release_notes.config import NotesConfig
from release_notes.errors import NotesError
from release_notes.generate import generate_for_range, generate_notes
from tests.release_notes.git_repo_builder import GitRepo

BOB = "Bob Builder <bob@example.com>"


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """v1.9.0 → v1.10.0 (string order would pick v1.9.0 as the highest), then work."""
    r = GitRepo(tmp_path / "app")
    r.commit("Initial commit")
    r.tag("v1.2.0")
    r.commit("feat(order): old feature")
    r.tag("v1.9.0")
    r.commit("fix(kds): old fix")
    r.tag("v1.10.0", annotated=True)
    r.commit("feat(order): tips (#12)\n\nCustomers add a tip.\n\nRelease-Note: Tips.")
    r.commit("fix(kds): reprint\n\nCo-authored-by: Carol <carol@example.com>", author=BOB)
    target = r.commit("chore: temp")
    r.commit(f'Revert "chore: temp"\n\nThis reverts commit {target}.')
    r.tag("v1.11.0")
    return r


def test_previous_tag_by_parsed_version(repo: GitRepo) -> None:
    notes = generate_for_range(repo.path, None, "v1.11.0")
    assert (notes.from_ref, notes.to_ref, notes.version) == ("v1.10.0", "v1.11.0", "v1.11.0")
    assert notes.commit_count == 4
    assert [i.commit.subject for i in notes.items] == ["reprint", "tips"]
    assert {f.reason for f in notes.filtered} == {"reverted"}
    first = {c.email: c.first_time for c in notes.contributors}
    assert first == {
        "alice@example.com": False,
        "bob@example.com": True,
        "carol@example.com": True,
    }


def test_previous_tag_of_a_branch_head(repo: GitRepo) -> None:
    notes = generate_for_range(repo.path, None, "main")
    assert notes.from_ref == "v1.10.0" and notes.version == "main"


def test_from_root_and_no_tags(tmp_path: Path) -> None:
    r = GitRepo(tmp_path / "fresh")
    r.commit("Initial commit")
    r.commit("feat: first")
    notes = generate_for_range(r.path, None, "HEAD")
    assert notes.from_sha is None and notes.commit_count == 2
    assert [i.commit.is_root for i in notes.items] == [False, True]


def test_merge_commits_and_pr_numbers(tmp_path: Path) -> None:
    r = GitRepo(tmp_path / "m")
    r.commit("Initial commit")
    r.tag("v1.0.0")
    r.branch("topic")
    r.commit("feat(order): part one", author=BOB)
    r.commit("fix(order): part two", author=BOB)
    r.checkout("main")
    r.commit("docs: readme (#3)")
    r.merge("topic", "Merge pull request #42 from acme/topic\n\nTips")
    notes = generate_for_range(r.path, "v1.0.0", "HEAD")
    assert [(f.reason, f.commit.pr_number) for f in notes.filtered] == [("merge", 42)]
    assert sorted((i.commit.subject, i.pr_number) for i in notes.items) == [
        ("part one", 42),
        ("part two", 42),
        ("readme", 3),
    ]


def test_odd_messages_do_not_crash(tmp_path: Path) -> None:
    r = GitRepo(tmp_path / "odd")
    r.commit("Initial commit")
    r.tag("v1.0.0")
    r.commit(b"")
    r.commit("fix(printer): caf\xe9 receipts\n".encode("latin-1"))
    r.commit("fix(printer): caf\xe9 declared\n".encode("latin-1"), encoding="ISO-8859-1")
    r.commit("feat: huge\n\n" + "x" * 2_000_000 + "\n\nRelease-Note: big one")
    r.commit("feat: sep \x1f in message")
    notes = generate_for_range(r.path, "v1.0.0", "HEAD")
    subjects = {i.commit.subject for i in notes.items}
    # Undeclared latin-1 comes out as U+FFFD or re-encoded, depending on git; never a crash.
    assert subjects & {"caf\ufffd receipts", "café receipts"}
    assert {"(no commit message)", "café declared", "huge", "sep \x1f in message"} <= subjects
    assert len(notes.items) == 5
    assert (
        next(i for i in notes.items if i.commit.subject == "huge").commit.release_note == "big one"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo", "{tmp}/nowhere", "--to", "HEAD"], "not a git repository"),
        (["--repo", "{tmp}", "--to", "HEAD"], "not a git repository"),
        (["--to", "v9.9.9"], "unknown ref for --to: 'v9.9.9'"),
        (["--from", "nope", "--to", "v1.11.0"], "unknown ref for --from: 'nope'"),
        (["--from", "--help", "--to", "v1.11.0"], "unknown ref for --from"),
        (["--from", "v1.11.0", "--to", "v1.10.0"], "v1.10.0 is already in v1.11.0"),
        (["--from", "v1.11.0", "--to", "v1.11.0"], "empty range"),
        (["--to", "v1.11.0", "--config", "{tmp}/missing.toml"], "cannot read config"),
        (["--to", "v1.11.0", "--config", "{tmp}/bad.toml"], "release_notes.bot_policy"),
        (["--to", "v1.11.0", "--config", "{tmp}/tpl.toml"], "cannot read template"),
        (["--to", "v1.11.0", "--from", "v1.10.0", "--from-root"], "cannot be combined"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    repo: GitRepo, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.toml").write_text('[release_notes]\nbot_policy = "drop"\n')
    (tmp_path / "tpl.toml").write_text('[release_notes]\ntemplate = "absent.md.j2"\n')
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--repo" not in args:
        args = ["--repo", str(repo.path), *args]
    result = CliRunner().invoke(generate, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_markdown_json_and_output(repo: GitRepo, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(notes_cli, ["generate", "--repo", str(repo.path), "--to", "v1.11.0"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# Release v1.11.0")
    assert "reading history" not in result.stderr  # not a terminal: no progress

    result = runner.invoke(
        generate, ["--repo", str(repo.path), "--to", "v1.11.0", "--format", "json"]
    )
    data = json.loads(result.stdout)
    assert data["counts"] == {
        "commits": 4,
        "shown": 2,
        "filtered": 2,
        "prs": 1,
        "contributors": 3,
        "breaking": 0,
        "dependencies": 0,
        "already_shipped": 0,
    }

    out = tmp_path / "notes.md"
    config = tmp_path / "notes.toml"
    (tmp_path / "t.md.j2").write_text("custom {{ notes.version }}")
    config.write_text('[release_notes]\ntemplate = "t.md.j2"\n')
    result = runner.invoke(
        generate,
        [
            "--repo",
            str(repo.path),
            "--to",
            "v1.11.0",
            "--config",
            str(config),
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert out.read_text() == "custom v1.11.0"


def test_generate_notes_in_process(repo: GitRepo) -> None:
    md = generate_notes(repo.path, "v1.10.0", "v1.11.0", config=NotesConfig(areas={"kds": "KDS"}))
    assert "### KDS" in md
    with pytest.raises(NotesError, match="unknown format"):
        generate_notes(repo.path, "v1.10.0", "v1.11.0", fmt="html")


def test_python_dash_m(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--repo", str(repo.path), "--to", "nope"])
    assert exc.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: unknown ref for --to: 'nope' is not a commit in the repository"
    )


def test_commits_module_imports_without_git() -> None:
    import subprocess

    code = (
        "import sys, release_notes.commits, release_notes.notes, release_notes.render; "
        "print('git' in sys.modules, 'jinja2' in sys.modules, 'flask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_from_need_not_be_an_ancestor(tmp_path: Path) -> None:
    """git's ``t1..v2.0.0``: what v2.0.0 has and t1 has not, whichever branch t1 is on."""
    r = GitRepo(tmp_path / "side")
    r.commit("Initial commit")
    r.branch("topic")
    r.commit("feat: on topic")
    r.tag("t1", annotated=True)
    r.checkout("main")
    r.commit("fix: on main")
    r.tag("v2.0.0", annotated=True)
    notes = generate_for_range(r.path, "t1", "v2.0.0")
    assert [i.commit.subject for i in notes.items] == ["on main"]
    assert (notes.from_ref, notes.commit_count, notes.already_shipped) == ("t1", 1, [])
    with pytest.raises(NotesError, match=r"unknown ref for --to: 'HEAD\^\{tree\}'"):
        generate_for_range(r.path, "t1", "HEAD^{tree}")


def test_annotated_tags_and_dates(repo: GitRepo) -> None:
    notes = generate_for_range(repo.path, "v1.10.0", "v1.11.0")
    assert notes.from_sha == repo.git("rev-parse", "v1.10.0^{commit}")
    assert notes.to_sha == repo.git("rev-parse", "v1.11.0^{commit}")
    assert notes.date == repo.git("log", "-1", "--format=%cs", "v1.11.0")
    whole = generate_for_range(repo.path, None, "v1.11.0", from_root=True)
    assert whole.date == notes.date and whole.commit_count == 7


def test_bad_refs_stop_the_log_that_started_on_them(repo: GitRepo) -> None:
    # git log starts on the ref names while they are resolved: every bad ref still gets
    # its own message, and an annotated tag naming the same commit is an empty range.
    repo.tag("same", annotated=True)
    with pytest.raises(NotesError, match=r"empty range: same and v1\.11\.0 are the same commit"):
        generate_for_range(repo.path, "same", "v1.11.0")
    with pytest.raises(NotesError, match=r"unknown ref for --from: 'HEAD\^\{tree\}'"):
        generate_for_range(repo.path, "HEAD^{tree}", "v1.11.0")
    with pytest.raises(NotesError, match=r"unknown ref for --to: 'nope'"):
        generate_for_range(repo.path, None, "nope", from_root=True)
    notes = generate_for_range(repo.path, "v1.10.0~1", "main")
    assert notes.commit_count == 5 and notes.to_sha == repo.git("rev-parse", "main")


def test_python_m_writes_everything_before_it_exits(repo: GitRepo, tmp_path: Path) -> None:
    # ``python -m release_notes`` ends the process right after writing (no teardown).
    args = ["--repo", str(repo.path), "--from", "v1.10.0", "--to", "v1.11.0"]
    cmd = [sys.executable, "-m", "release_notes", "generate", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert out.stdout == generate_notes(repo.path, "v1.10.0", "v1.11.0")
    target = tmp_path / "notes.json"
    subprocess.run([*cmd, "--format", "json", "--output", str(target)], check=True)
    assert json.loads(target.read_text())["counts"]["commits"] == 4
    bad = subprocess.run([*cmd[:-1], "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown ref for --to")


def test_repeated_range_reuses_the_first_timer_scan(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from release_notes import git_history

    first = generate_for_range(repo.path, "v1.10.0", "v1.11.0")
    calls: list[tuple[str, ...]] = []
    popen = git_history.GitRepo.popen

    def counting(self: git_history.GitRepo, *args: str, stdin: bool = False):  # type: ignore[no-untyped-def]
        calls.append(args)
        return popen(self, *args, stdin=stdin)

    monkeypatch.setattr(git_history.GitRepo, "popen", counting)
    again = generate_for_range(repo.path, "v1.10.0", "v1.11.0")
    assert [(c.email, c.first_time) for c in again.contributors] == [
        (c.email, c.first_time) for c in first.contributors
    ]
    # The range's log and the ref check only: no second walk of the older history.
    assert not any("--format=%aE" in " ".join(a) for a in calls) and len(calls) == 2
    # A .mailmap edit can change authors' emails: the scan runs again.
    (repo.path / ".mailmap").write_text("Bob <bob@example.com>\n")
    calls.clear()
    generate_for_range(repo.path, "v1.10.0", "v1.11.0")
    assert any("--format=%aE" in " ".join(a) for a in calls)


def test_cli_output_to_a_pipe_writes_into_it_and_keeps_it(repo: GitRepo, tmp_path: Path) -> None:
    """`--output /dev/null` or a FIFO is written in place; the atomic rename would have
    replaced the device or pipe with a regular file."""
    import os
    import stat
    import threading

    folder = tmp_path / "out"
    folder.mkdir()
    pipe = folder / "pipe"
    os.mkfifo(pipe)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()
    args = ["--repo", str(repo.path), "--to", "v1.11.0", "--output", str(pipe)]
    result = CliRunner().invoke(generate, args)
    reader.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert received and received[0].startswith("# Release v1.11.0")
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert [p.name for p in folder.iterdir()] == ["pipe"]  # no temporary file left


def test_a_git_that_does_not_finish_is_killed_at_the_timeout(repo: GitRepo) -> None:
    """``timeout``: the git processes still running then are killed and the generation fails
    with a one-line error (here git waits forever opening a ``.mailmap`` that is a FIFO)."""
    os.mkfifo(repo.path / ".mailmap")
    outcome: list[BaseException] = []

    def generate_it() -> None:
        try:
            generate_for_range(repo.path, "v1.10.0", "HEAD", timeout=1)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=generate_it, daemon=True)
    thread.start()
    thread.join(60)  # the test's own deadline
    assert not thread.is_alive(), "git was not stopped"
    assert len(outcome) == 1 and isinstance(outcome[0], NotesError)
    assert str(outcome[0]) == "git did not finish within 1 s"
