"""The repository cache: local paths in place, remote URLs mirrored and fetched."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import git
import pytest

from service.releases.repos import (
    RepoError,
    RepoPolicy,
    RepoRefused,
    check_location,
    is_remote_url,
    resolve_repo,
)
from tests.release_notes.git_repo_builder import GitRepo
from tests.service.releases.remotes import HangingRemote, RedirectingRemote


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


def _policy(tmp_path: Path, cache: str = "cache") -> RepoPolicy:
    """Local repositories anywhere under ``tmp_path``; mirrors in ``tmp_path/cache``."""
    return RepoPolicy(root=tmp_path, cache_dir=tmp_path / cache, timeout=30)


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
    path = resolve_repo(FakeApp("pos", str(work.path)), _policy(tmp_path))
    assert path == work.path.resolve()
    assert not (tmp_path / "cache").exists()


def test_local_bare_repository_is_used_in_place(
    tmp_path: Path, origin: tuple[GitRepo, Path]
) -> None:
    _, bare = origin
    assert resolve_repo(FakeApp("pos", str(bare)), _policy(tmp_path, "c")) == bare.resolve()


def test_clone_on_first_use_then_fetch_new_commits_and_tags(
    tmp_path: Path, origin: tuple[GitRepo, Path]
) -> None:
    work, bare = origin
    app = FakeApp("pos", f"file://{bare}")
    cache = tmp_path / "cache"
    mirror = resolve_repo(app, _policy(tmp_path))
    assert mirror == (cache / "pos").resolve()
    assert _tags(mirror) == {"v1.0.0"}

    work.commit("fix(payment): round tips (#2)")
    work.tag("v1.1.0")
    work.git("push", "-q", str(bare), "main", "--tags")
    assert resolve_repo(app, _policy(tmp_path)) == mirror
    assert _tags(mirror) == {"v1.0.0", "v1.1.0"}
    assert git.Repo(mirror).git.rev_parse("v1.1.0^{commit}") == work.head()
    # No staging folders or stray clones left behind; only the mirror and its lock.
    assert sorted(p.name for p in cache.iterdir()) == ["pos", "pos.lock"]


def test_changed_url_is_followed(tmp_path: Path, origin: tuple[GitRepo, Path]) -> None:
    work, bare = origin
    resolve_repo(FakeApp("pos", f"file://{bare}"), _policy(tmp_path))
    other = tmp_path / "moved.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(bare), str(other)], check=True)
    work.commit("feat(menu): sold-out badge (#3)")
    work.tag("v1.2.0")
    work.git("push", "-q", str(other), "main", "--tags")
    mirror = resolve_repo(FakeApp("pos", f"file://{other}"), _policy(tmp_path))
    assert "v1.2.0" in _tags(mirror)


def test_concurrent_first_use_clones_once(tmp_path: Path, origin: tuple[GitRepo, Path]) -> None:
    _, bare = origin
    app = FakeApp("pos", f"file://{bare}")
    results: list[Path | Exception] = []

    def worker() -> None:
        try:
            results.append(resolve_repo(app, _policy(tmp_path)))
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
        resolve_repo(FakeApp("pos", location), _policy(tmp_path))
    assert "\n" not in str(info.value)


def test_unreachable_remote_is_a_one_line_error_and_leaves_no_mirror(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(RepoError, match=r"cannot clone file://.*nowhere\.git") as info:
        resolve_repo(FakeApp("pos", f"file://{tmp_path}/nowhere.git"), _policy(tmp_path))
    assert "\n" not in str(info.value)
    assert not (cache / "pos").exists()
    assert [p.name for p in cache.iterdir()] == ["pos.lock"]


def test_fetch_failure_after_clone_is_reported(
    tmp_path: Path, origin: tuple[GitRepo, Path]
) -> None:
    _, bare = origin
    resolve_repo(FakeApp("pos", f"file://{bare}"), _policy(tmp_path))
    gone = f"file://{tmp_path}/gone.git"
    with pytest.raises(RepoError, match="cannot fetch"):
        resolve_repo(FakeApp("pos", gone), _policy(tmp_path))


# --- which locations may be used (RELGOV_REPO_ROOT, RELGOV_REPO_ALLOWED_HOSTS) ---------------

LISTED = ("git.internal", "mirror.example.com:8080", "127.0.0.1")


@pytest.mark.parametrize(
    ("location", "allowed", "refusal"),
    [
        # Remote URLs: https and ssh anywhere public or private, http only for listed hosts.
        ("https://github.com/org/pos.git", (), None),
        ("https://10.1.2.3/org/pos.git", (), None),
        ("ssh://git@github.com/org/pos.git", (), None),
        ("ssh://git@github.com:2222/org/pos.git", (), None),
        ("git@github.com:org/pos.git", (), None),
        ("http://git.internal/pos.git", LISTED, None),
        ("http://mirror.example.com:8080/pos.git", LISTED, None),
        ("http://github.com/org/pos.git", LISTED, "http:// is allowed only for the hosts"),
        ("http://mirror.example.com/pos.git", LISTED, "http:// is allowed only"),  # port 80
        ("git://github.com/org/pos.git", (), "git:// repositories are not allowed"),
        ("ftp://example.com/pos.git", (), "ftp:// repositories are not allowed"),
        ("ext::sh -c touch% /tmp/pwned", (), "git transport helpers are not allowed"),
        # Loopback, link-local and the like: refused unless listed.
        ("https://169.254.169.254/latest/meta-data/", (), "link-local address"),
        ("https://169.254.169.254/latest/meta-data/", LISTED, "link-local address"),
        ("https://169.254.169.254/x", ("169.254.169.254",), None),
        ("https://[fe80::1]/pos.git", (), "link-local address"),
        ("https://[::ffff:169.254.169.254]/pos.git", (), "link-local address"),
        ("https://127.0.0.1/pos.git", (), "loopback address"),
        ("https://2130706433/pos.git", (), "loopback address"),  # 127.0.0.1 as a number
        ("https://127.1/pos.git", (), "loopback address"),
        ("https://localhost/pos.git", (), "loopback address"),
        ("https://gitlab.localhost/pos.git", (), "loopback address"),
        ("https://[::1]/pos.git", (), "loopback address"),
        ("https://0.0.0.0/pos.git", (), "unspecified address"),
        ("https://224.0.0.1/pos.git", (), "multicast address"),
        ("ssh://git@127.0.0.1/pos.git", (), "loopback address"),
        ("git@169.254.169.254:pos.git", (), "link-local address"),
        # A listed 127.0.0.1 allows loopback (any port unless one is given).
        ("http://127.0.0.1:9418/pos.git", LISTED, None),
        ("https://localhost/pos.git", LISTED, None),
        ("https://[::1]/pos.git", LISTED, None),
        ("http://127.0.0.1:9418/pos.git", ("127.0.0.1:8080",), "http:// is allowed only"),
        # Hosts git would read as options, or no host at all.
        ("ssh://-oProxyCommand=touch%20x/pos.git", (), "does not name a valid host"),
        ("https://-x/pos.git", (), "does not name a valid host"),
        ("https:///pos.git", (), "does not name a valid host"),
        ("--upload-pack=touch /tmp/x", (), "is not a path or URL"),
        # Local repositories: only under the root, never the cache.
        ("{root}/apps/pos", (), None),
        ("apps/pos", (), None),  # relative to the root
        ("file://{root}/apps/pos.git", (), None),
        ("/etc", (), "not under RELGOV_REPO_ROOT"),
        ("{root}/../elsewhere", (), "not under RELGOV_REPO_ROOT"),
        ("file:///etc/pos.git", (), "not under RELGOV_REPO_ROOT"),
        ("file://other-host/srv/pos.git", (), "names no host"),
        ("{root}/link-out", (), "not under RELGOV_REPO_ROOT"),  # a symlink leading out
        ("{root}/cache/kds", (), "inside the repository cache"),
    ],
)
def test_which_locations_may_be_used(
    tmp_path: Path, location: str, allowed: tuple[str, ...], refusal: str | None
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link-out").symlink_to(tmp_path)
    policy = RepoPolicy(root=root, cache_dir=root / "cache", allowed_hosts=allowed)
    location = location.replace("{root}", str(root))
    if refusal is None:
        check_location(location, policy)
        return
    with pytest.raises(RepoRefused, match=re.escape(refusal)) as info:
        check_location(location, policy)
    assert "\n" not in str(info.value)


def test_a_name_resolving_to_a_special_address_is_refused_before_git_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check at save time sees only the text; right before git runs the host's
    addresses are checked too (a public-looking name may point at the metadata service)."""
    real = socket.getaddrinfo

    def fake(host: str, port: object, *args: object, **kwargs: object) -> object:
        if host == "metadata.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 443))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    policy = _policy(tmp_path)
    app = FakeApp("pos", "https://metadata.example.com/org/pos.git")
    check_location(app.repo_url, policy)  # the text alone is fine
    with pytest.raises(
        RepoRefused, match=r"repo_url is refused: .*169\.254\.169\.254, a link-local"
    ):
        resolve_repo(app, policy)
    assert not (tmp_path / "cache").exists()  # git never ran
    assert not (tmp_path / "cache" / "pos").exists()


def test_git_connects_only_to_the_addresses_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over http(s) git is told the addresses that were checked (``http.curloptResolve``),
    so a second DNS answer cannot send it elsewhere: here the name is known only to the
    check (git could not resolve it itself) and git still reaches the checked address."""
    real = socket.getaddrinfo
    with HangingRemote() as remote:

        def fake(host: str, port: object, *args: object, **kwargs: object) -> object:
            if host == "git.example.test":
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", remote.port))]
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(socket, "getaddrinfo", fake)
        policy = RepoPolicy(
            root=tmp_path, cache_dir=tmp_path / "cache", allowed_hosts=("127.0.0.1",), timeout=1
        )
        url = f"http://git.example.test:{remote.port}/pos.git"
        with pytest.raises(RepoRefused, match="http:// is allowed only"):
            resolve_repo(FakeApp("pos", url), policy)  # the name itself is not listed
        listed = RepoPolicy(**{**vars(policy), "allowed_hosts": ("git.example.test",)})
        with pytest.raises(RepoError, match="timed out"):
            resolve_repo(FakeApp("pos", url), listed)
        assert remote.accepted.is_set()


def test_a_repository_saved_before_the_rules_is_refused_when_used(
    tmp_path: Path, origin: tuple[GitRepo, Path]
) -> None:
    """An app whose path lies outside the root (saved before the setting, or by hand in the
    database) is not read."""
    work, _ = origin
    elsewhere = RepoPolicy(root=tmp_path / "root", cache_dir=tmp_path / "root" / "cache")
    with pytest.raises(RepoRefused, match="not under RELGOV_REPO_ROOT"):
        resolve_repo(FakeApp("pos", str(work.path)), elsewhere)
    with pytest.raises(RepoRefused, match="not under RELGOV_REPO_ROOT"):
        resolve_repo(FakeApp("pos", f"file://{work.path}"), elsewhere)


def test_a_hanging_remote_is_given_up_after_the_timeout(tmp_path: Path) -> None:
    """A socket that accepts and never answers: git is killed after the timeout (with its
    git-remote-http helper) and the error says so; no mirror is left behind."""
    with HangingRemote() as remote:
        policy = RepoPolicy(
            root=tmp_path, cache_dir=tmp_path / "cache", allowed_hosts=("127.0.0.1",), timeout=1
        )
        outcome: list[BaseException] = []

        def attempt() -> None:
            try:
                resolve_repo(FakeApp("pos", remote.url()), policy)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        thread.join(timeout=60)  # the test's own deadline, far above the timeout
        assert not thread.is_alive(), "git was not stopped"
        assert remote.accepted.is_set()
    assert len(outcome) == 1 and isinstance(outcome[0], RepoError)
    assert "timed out, git did not finish within 1 s (RELGOV_GIT_TIMEOUT_SECONDS)" in str(
        outcome[0]
    )
    assert not (tmp_path / "cache" / "pos").exists()


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    """An allowed http(s) host cannot send git on to another address with a redirect."""
    target = HangingRemote()
    with target, RedirectingRemote(target.url("elsewhere.git")) as redirector:
        policy = RepoPolicy(
            root=tmp_path, cache_dir=tmp_path / "cache", allowed_hosts=("127.0.0.1",), timeout=20
        )
        with pytest.raises(RepoError, match="cannot clone"):
            resolve_repo(FakeApp("pos", redirector.url("pos.git")), policy)
        assert redirector.requests, "git never asked the allowed host"
        assert not target.accepted.is_set(), "git followed the redirect"
