"""Where an app's git history lives: a local repository used in place, or a cached mirror.

``resolve_repo(app, cache_dir=...)`` returns a path the release-notes engine can read. A
remote URL (https://, http://, ssh://, git://, git@host:path, file://) is mirrored into
``cache_dir/<slug>`` on first use and fetched (tags included) on later uses; a lock file
next to the mirror keeps two workers from cloning or fetching the same repository at once.
Every failure is a :class:`RepoError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import git

__all__ = ["RepoError", "is_remote_url", "resolve_repo"]

GIT_TIMEOUT_SECONDS = 600
_REMOTE_PREFIXES = ("https://", "http://", "ssh://", "git://", "file://")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:.+")  # git@github.com:org/pos.git
# Never let git ask for a password on a terminal nobody is watching.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}


class RepoError(Exception):
    """The app's repository cannot be used; the message is one line that says why."""


class HasRepo(Protocol):
    slug: str
    repo_url: str


def is_remote_url(location: str) -> bool:
    """Whether ``location`` names a remote to mirror rather than a local path."""
    return location.startswith(_REMOTE_PREFIXES) or bool(_SCP_LIKE.match(location))


def resolve_repo(app: HasRepo, *, cache_dir: Path, fetch: bool = True) -> Path:
    """A readable git repository for ``app`` (see the module docstring)."""
    location = (app.repo_url or "").strip()
    if not location:
        raise RepoError(f"app {app.slug} has no repository configured")
    if location.startswith("-") or any(ch in location for ch in "\x00\n\r"):
        raise RepoError(f"repository {location!r} is not a path or URL")
    if is_remote_url(location):
        return _mirror(app.slug, location, Path(cache_dir), fetch=fetch)
    return _local(location)


def _local(location: str) -> Path:
    path = Path(location).expanduser()
    if not path.exists():
        raise RepoError(f"repository path {path} does not exist")
    if not path.is_dir():
        raise RepoError(f"repository path {path} is not a folder")
    try:
        # No search upwards: a folder inside a work tree is not the app's repository.
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise RepoError(f"{path} is not a git repository") from None
    try:
        return Path(repo.git_dir if repo.bare else repo.working_tree_dir or path).resolve()
    finally:
        repo.close()


def _git_message(exc: git.GitCommandError) -> str:
    stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
    lines = [
        line.strip().removeprefix("stderr: ").strip("'").strip()
        for line in stderr.splitlines()
        if line.strip()
    ]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (fatal or lines or [f"git exited with status {exc.status}"])[-1]


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (blocks while another worker holds it)."""
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _mirror(slug: str, url: str, cache_dir: Path, *, fetch: bool) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", slug):
        raise RepoError(f"app slug {slug!r} cannot name a cache folder")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepoError(f"cannot create repository cache {cache_dir}: {exc.strerror}") from None
    target = cache_dir / slug
    env = {**os.environ, **_GIT_ENV}  # child process environment
    with _locked(cache_dir / f"{slug}.lock"):
        if (target / "HEAD").exists():
            if fetch:
                _fetch(target, url, env)
            return target.resolve()
        _clone(target, url, cache_dir, env)
    return target.resolve()


def _clone(target: Path, url: str, cache_dir: Path, env: dict[str, str]) -> None:
    # Clone next to the target and rename: a half-finished clone never looks like a mirror.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
    try:
        git.Git().clone(
            "--mirror",
            "--quiet",
            "--",
            url,
            str(staging / "repo.git"),
            env=env,
            kill_after_timeout=GIT_TIMEOUT_SECONDS,
        )
        if target.exists():
            shutil.rmtree(target)
        (staging / "repo.git").rename(target)
    except git.GitCommandError as exc:
        raise RepoError(f"cannot clone {url}: {_git_message(exc)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(target: Path, url: str, env: dict[str, str]) -> None:
    try:
        repo = git.Repo(target)
    except git.InvalidGitRepositoryError:
        raise RepoError(f"the cached mirror {target} is damaged; delete it to re-clone") from None
    try:
        # The admin may have changed the app's URL since the mirror was made.
        if repo.git.config("--get", "remote.origin.url") != url:
            repo.git.remote("set-url", "origin", url)
        repo.git.fetch(
            "--prune",
            "--tags",
            "--quiet",
            "origin",
            env=env,
            kill_after_timeout=GIT_TIMEOUT_SECONDS,
        )
    except git.GitCommandError as exc:
        raise RepoError(f"cannot fetch {url}: {_git_message(exc)}") from None
    finally:
        repo.close()
