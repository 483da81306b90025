"""The repository cache: local paths in place, remote URLs mirrored and fetched."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import git
import pytest

from service.releases.repos import RepoError, is_remote_url, resolve_repo
from tests.release_notes.git_repo_builder import GitRepo


@dataclass
class FakeApp:
    slug: str
    repo_url: str


@pytest.fixture
def origin(tmp_path: Path) -> tuple[GitRepo, Path]:
    """A work tree and a bare copy of it to use as the remote (file://, no network)."""
    work = GitRepo(tmp_path / "work")
    work.commit("feat(order): split bills (#1)")
    work.tag("v1.0.0")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work.path), str(bare)], check=True)
    return work, bare


def _tags(path: Path) -> set[str]:
    repo = git.Repo(path)
    try:
        return {t.name for t in repo.tags}
    finally:
        repo.close()


@pytest.mark.parametrize(
    ("location", "remote"),
    [
        ("https://github.com/org/pos.git", True),
        ("http://git.local/pos", True),
        ("ssh://git@github.com/org/pos.git", True),
        ("git@github.com:org/pos.git", True),
        ("file:///srv/git/pos.git", True),
        ("git://example.com/pos.git", True),
        ("/srv/git/pos", False),
        ("repos/pos", False),
        ("C:/pos", False),
    ],
)
def test_remote_or_local(location: str, remote: bool) -> None:
    assert is_remote_url(location) is remote


def test_local_work_tree_is_used_in_place(tmp_path: Path, origin: tuple[GitRepo, Path]) -> None:
    work, _ = origin
    path = resolve_repo(FakeApp("pos", str(work.path)), cache_dir=tmp_path / "cache")
    assert path == work.path.resolve()
    assert not (tmp_path / "cache").exists()


def test_local_bare_repository_is_used_in_place(
    tmp_path: Path, origin: tuple[GitRepo, Path]
) -> None:
    _, bare = origin
    assert resolve_repo(FakeApp("pos", str(bare)), cache_dir=tmp_path / "c") == bare.resolve()


def test_clone_on_first_use_then_fetch_new_commits_and_tags(
    tmp_path: Path, origin: tuple[GitRepo, Path]
) -> None:
    work, bare = origin
    app = FakeApp("pos", f"file://{bare}")
    cache = tmp_path / "cache"
    mirror = resolve_repo(app, cache_dir=cache)
    assert mirror == (cache / "pos").resolve()
    assert _tags(mirror) == {"v1.0.0"}

    work.commit("fix(payment): round tips (#2)")
    work.tag("v1.1.0")
    work.git("push", "-q", str(bare), "main", "--tags")
    assert resolve_repo(app, cache_dir=cache) == mirror
    assert _tags(mirror) == {"v1.0.0", "v1.1.0"}
    assert git.Repo(mirror).git.rev_parse("v1.1.0^{commit}") == work.head()
    # No staging folders or stray clones left behind; only the mirror and its lock.
    assert sorted(p.name for p in cache.iterdir()) == ["pos", "pos.lock"]


def test_changed_url_is_followed(tmp_path: Path, origin: tuple[GitRepo, Path]) -> None:
    work, bare = origin
    cache = tmp_path / "cache"
    resolve_repo(FakeApp("pos", f"file://{bare}"), cache_dir=cache)
    other = tmp_path / "moved.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(bare), str(other)], check=True)
    work.commit("feat(menu): sold-out badge (#3)")
    work.tag("v1.2.0")
    work.git("push", "-q", str(other), "main", "--tags")
    mirror = resolve_repo(FakeApp("pos", f"file://{other}"), cache_dir=cache)
    assert "v1.2.0" in _tags(mirror)


def test_concurrent_first_use_clones_once(tmp_path: Path, origin: tuple[GitRepo, Path]) -> None:
    _, bare = origin
    app = FakeApp("pos", f"file://{bare}")
    results: list[Path | Exception] = []

    def worker() -> None:
        try:
            results.append(resolve_repo(app, cache_dir=tmp_path / "cache"))
        except Exception as exc:  # pragma: no cover - reported by the assert below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and isinstance(results[0], Path), results


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("plain-folder", "is not a git repository"),
        ("file", "is not a folder"),
        ("subfolder", "sub is not a git repository"),
        ("empty", "has no repository configured"),
        ("dash", "is not a path or URL"),
    ],
)
def test_bad_local_paths_are_one_line_errors(
    tmp_path: Path, origin: tuple[GitRepo, Path], setup: str, message: str
) -> None:
    work, _ = origin
    location = {
        "missing": str(tmp_path / "nope"),
        "plain-folder": str(tmp_path),
        "file": str(tmp_path / "a-file"),
        "subfolder": str(work.path / "sub"),
        "empty": "",
        "dash": "--upload-pack=touch /tmp/pwned",
    }[setup]
    (tmp_path / "a-file").write_text("x")
    (work.path / "sub").mkdir(exist_ok=True)
    with pytest.raises(RepoError, match=message) as info:
        resolve_repo(FakeApp("pos", location), cache_dir=tmp_path / "cache")
    assert "\n" not in str(info.value)


def test_unreachable_remote_is_a_one_line_error_and_leaves_no_mirror(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(RepoError, match=r"cannot clone file://.*nowhere\.git") as info:
        resolve_repo(FakeApp("pos", f"file://{tmp_path}/nowhere.git"), cache_dir=cache)
    assert "\n" not in str(info.value)
    assert not (cache / "pos").exists()
    assert [p.name for p in cache.iterdir()] == ["pos.lock"]


def test_fetch_failure_after_clone_is_reported(
    tmp_path: Path, origin: tuple[GitRepo, Path]
) -> None:
    _, bare = origin
    cache = tmp_path / "cache"
    resolve_repo(FakeApp("pos", f"file://{bare}"), cache_dir=cache)
    gone = f"file://{tmp_path}/gone.git"
    with pytest.raises(RepoError, match="cannot fetch"):
        resolve_repo(FakeApp("pos", gone), cache_dir=cache)
