"""Where an app's git history lives, which locations may be used, and the git commands that
fetch it.

- :func:`check_location` says whether a repository location may be used; the app forms, the
  API and every git command ask it. Remote URLs are ``https://``, ``ssh://`` or scp-like
  ``user@host:path``, and ``http://`` only for a host listed in
  ``RELGOV_REPO_ALLOWED_HOSTS``. A host that is (or, checked right before git runs, resolves
  to) a loopback, link-local, unspecified or multicast address is refused unless it is
  listed (a listed loopback address, e.g. ``127.0.0.1``, allows every loopback address).
  Local repositories (a path, or a ``file://`` URL) must lie under ``RELGOV_REPO_ROOT``
  (symbolic links resolved) and outside the repository cache.
- :func:`resolve_repo` returns a path the release-notes engine can read: a local repository
  used in place, or a mirror of the remote (``file://`` included) in ``cache_dir/<slug>``,
  cloned on first use and fetched (tags included) on later uses; a lock file next to the
  mirror keeps two workers from cloning or fetching the same repository at once.
- Every git command runs for at most ``RELGOV_GIT_TIMEOUT_SECONDS``; then git and its
  helpers (``git-remote-https``, ``ssh``) are killed and the error says so. Git follows no
  HTTP redirect, may speak only the URL's own protocol and, over http(s), connects only to
  the addresses checked here (``http.curloptResolve``).

No database work happens here: callers run it with no transaction open. Every failure is a
:class:`RepoError` with a one-line message; a location the rules refuse is a
:class:`RepoRefused`.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import git

from service.settings import Settings

__all__ = [
    "GitTimeout",
    "RefNotFound",
    "RepoError",
    "RepoPolicy",
    "RepoRefused",
    "check_location",
    "is_remote_url",
    "resolve_ref",
    "resolve_repo",
]

_REMOTE_PREFIXES = ("https://", "http://", "ssh://", "git://", "file://")
# git@github.com:org/pos.git, git@[::1]:pos.git
_SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+)@(?P<host>\[[0-9a-fA-F:.]+\]|[\w.-]+):(?P<path>.+)")
_TRANSPORT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")  # ext::cmd, fd::0: git's helpers
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")  # 2130706433, 127.1, 0x7f.0.0.1: IPv4 to git
_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_LOOPBACK = ipaddress.ip_address("127.0.0.1")
# Never let git ask for a password on a terminal nobody is watching.
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "LC_ALL": "C",
    "LANGUAGE": "C",
}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RepoError(Exception):
    """The app's repository cannot be used; the message is one line that says why."""


class RepoRefused(RepoError):
    """The location is not allowed (scheme, host, address or folder)."""


class GitTimeout(RepoError):
    """Git did not finish within ``RELGOV_GIT_TIMEOUT_SECONDS`` (it was killed)."""


class RefNotFound(RepoError):
    """The repository has no branch, tag or commit of that name."""


class HasRepo(Protocol):
    @property
    def slug(self) -> str: ...

    @property
    def repo_url(self) -> str: ...


@dataclass(frozen=True)
class RepoPolicy:
    """What the settings allow: the folder local repositories live in, the mirror cache,
    the listed hosts (``host`` or ``host:port``) and the timeout of each git command."""

    root: Path
    cache_dir: Path
    allowed_hosts: tuple[str, ...] = ()
    timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RepoPolicy:
        return cls(
            root=Path(settings.repo_root_path),
            cache_dir=Path(settings.repo_cache),
            allowed_hosts=tuple(settings.repo_allowed_hosts),
            timeout=float(settings.git_timeout_seconds),
        )

    def entries(self) -> list[tuple[str, int | None]]:
        """The listed hosts as (host, port or None for any port)."""
        found = []
        for entry in self.allowed_hosts:
            host, port = entry.lower(), ""
            if host.startswith("["):
                host, _, rest = host[1:].partition("]")
                port = rest.removeprefix(":")
            elif host.count(":") == 1:
                host, port = host.split(":")
            found.append((host, int(port) if port.isdigit() else None))
        return found


@dataclass(frozen=True)
class Location:
    """A checked location: ``scheme`` is https, http, ssh, file or path (a local folder)."""

    scheme: str
    host: str = ""  # lower-case; an IPv6 address without brackets
    port: int | None = None
    path: Path | None = None  # file and path: the real path, under the root

    @property
    def remote_port(self) -> int:
        return self.port or _DEFAULT_PORTS.get(self.scheme, 0)


def is_remote_url(location: str) -> bool:
    """Whether ``location`` names a remote to mirror rather than a local path."""
    return location.startswith(_REMOTE_PREFIXES) or bool(_SCP_LIKE.match(location))


# --- which locations may be used ------------------------------------------------------------


def check_location(location: str, policy: RepoPolicy) -> Location:
    """The checked ``location``, or :class:`RepoRefused` saying why it may not be used.

    Looks at the text only (no DNS, no disk but resolving symbolic links):
    :func:`resolve_repo` checks again, with the addresses the host resolves to, right
    before git runs.
    """
    location = location.strip()
    if not location:
        raise RepoRefused("no repository is given")
    if location.startswith("-") or any(ch in location for ch in "\x00\n\r"):
        raise RepoRefused(f"{_shown(location)} is not a path or URL")
    if _TRANSPORT.match(location):
        raise RepoRefused(f"{_shown(location)}: git transport helpers are not allowed")
    scheme, sep, _ = location.partition("://")
    scheme = scheme.lower()
    scp = _SCP_LIKE.match(location) if not sep else None
    if sep and scheme == "file":
        return _local_location(_file_path(location), policy, scheme="file")
    if sep and scheme not in _DEFAULT_PORTS:
        raise RepoRefused(
            f"{scheme}:// repositories are not allowed: use https://, ssh://, user@host:path "
            "or a folder under RELGOV_REPO_ROOT"
        )
    if not sep and scp is None:
        return _local_location(Path(location), policy, scheme="path")
    if scp is not None:
        scheme, host, port = "ssh", scp["host"].strip("[]").lower(), None
    else:
        parts = urlsplit(location)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            raise RepoRefused(f"{_shown(location)} has an invalid port") from None
    if not host or not (_HOST_NAME.fullmatch(host) or _ip(host) is not None):
        raise RepoRefused(f"{_shown(location)} does not name a valid host")
    checked = Location(scheme=scheme, host=host, port=port)
    listed = _listed(policy, host, checked.remote_port)
    if scheme == "http" and not listed:
        raise RepoRefused(
            f"http:// is allowed only for the hosts in RELGOV_REPO_ALLOWED_HOSTS, and {host} "
            "is not one of them: use https://"
        )
    address = _address_of(host)
    reason = _special(address) if address is not None else None
    if reason and not listed:
        raise RepoRefused(
            f"{host} is a {reason} address, allowed only when listed in RELGOV_REPO_ALLOWED_HOSTS"
        )
    return checked


def _file_path(location: str) -> Path:
    parts = urlsplit(location)
    if parts.netloc not in ("", "localhost"):
        raise RepoRefused(f"{_shown(location)}: a file:// URL names no host")
    return Path(unquote(parts.path))


def _local_location(path: Path, policy: RepoPolicy, *, scheme: str) -> Location:
    given = path.expanduser()
    if not given.is_absolute():
        given = Path(policy.root) / given  # relative to the repository root
    real = Path(os.path.realpath(given))
    root = Path(os.path.realpath(policy.root))
    if not real.is_relative_to(root):
        raise RepoRefused(
            f"{path} is not under RELGOV_REPO_ROOT ({root}): local repositories must live there"
        )
    cache = Path(os.path.realpath(policy.cache_dir))
    if real.is_relative_to(cache):
        raise RepoRefused(f"{path} is inside the repository cache ({cache}), not an app's own")
    return Location(scheme=scheme, path=real)


def _ip(host: str) -> IPAddress | None:
    """``host`` as an address when it is one, in any form git would read as one."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host) and any(ch.isdigit() for ch in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _loopback_name(host: str) -> bool:
    return host in _LOOPBACK_NAMES or host.endswith(".localhost")


def _address_of(host: str) -> IPAddress | None:
    """The address ``host`` is (a loopback name counts as 127.0.0.1), else None."""
    address = _ip(host)
    if address is None and _loopback_name(host):
        return _LOOPBACK
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _special(address: IPAddress) -> str | None:
    """Why ``address`` is refused unless listed: it reaches this machine or its link."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
    ):
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    return None


def _listed(policy: RepoPolicy, host: str, port: int) -> bool:
    """Whether ``host`` at ``port`` is in ``RELGOV_REPO_ALLOWED_HOSTS``: by name, as the same
    address, or as a loopback address when a loopback address is listed (a listed
    ``127.0.0.1`` allows ``localhost`` and ``::1``)."""
    address = _address_of(host)
    for listed_host, listed_port in policy.entries():
        if listed_port not in (None, port):
            continue
        if listed_host == host:
            return True
        listed = _address_of(listed_host) if _ip(listed_host) is not None else None
        if (
            listed is not None
            and address is not None
            and (listed == address or (listed.is_loopback and address.is_loopback))
        ):
            return True
    return False


def _vetted_addresses(loc: Location, policy: RepoPolicy) -> list[IPAddress]:
    """The addresses git may connect to for ``loc``; refused when one of them is special
    and the host is not listed (a name that resolves to 169.254.169.254, say)."""
    literal = _ip(loc.host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(loc.host, loc.remote_port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise RepoError(f"cannot resolve {loc.host}: {exc}") from None
        addresses = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    if _listed(policy, loc.host, loc.remote_port):
        return addresses
    for address in addresses:
        reason = _special(_address_of(str(address)) or address)
        if reason and not _listed(policy, str(address), loc.remote_port):
            raise RepoRefused(
                f"{loc.host} resolves to {address}, a {reason} address, allowed only when the "
                "host is listed in RELGOV_REPO_ALLOWED_HOSTS"
            )
    return addresses


def _shown(location: str) -> str:
    """``location`` for a message: without a password, and short."""
    parts = urlsplit(location) if "://" in location else None
    if parts is not None and parts.password:
        user = parts.username or ""
        netloc = f"{user}:***@{parts.netloc.rpartition('@')[2]}"
        location = parts._replace(netloc=netloc).geturl()
    return location if len(location) <= 200 else location[:200] + "…"


# --- resolving a repository -------------------------------------------------------------------


def resolve_repo(
    app: HasRepo, policy: RepoPolicy, *, fetch: bool = True, lock_deadline: float | None = None
) -> Path:
    """A readable git repository for ``app`` (see the module docstring); waiting for the
    mirror's lock until ``lock_deadline`` (``time.monotonic()``) at most when given."""
    location = (app.repo_url or "").strip()
    if not location:
        raise RepoError(f"app {app.slug} has no repository configured")
    try:
        loc = check_location(location, policy)
        if loc.scheme == "path":
            assert loc.path is not None
            return _local(loc.path)
        pins = [] if loc.scheme == "file" else _vetted_addresses(loc, policy)
    except RepoRefused as exc:
        raise RepoRefused(f"the app's repo_url is refused: {exc}") from None
    return _mirror(app.slug, location, loc, pins, policy, fetch=fetch, deadline=lock_deadline)


# --- resolving a ref, before a release exists ---------------------------------------------

_SHA_LIKE = re.compile(r"[0-9a-f]{7,40}")


def resolve_ref(app: HasRepo, ref: str, policy: RepoPolicy) -> str:
    """The commit ``ref`` (a branch, tag or commit) names in ``app``'s repository, or
    :class:`RefNotFound`; everything within one ``policy.timeout`` (:class:`GitTimeout`).

    A local repository answers with ``rev-parse``. A remote is asked with ``ls-remote`` (no
    clone, no lock); a commit id it does not list as a ref is looked up in the mirror, which
    is fetched (under its lock, within what is left of the timeout) only when it lacks it.
    """
    deadline = time.monotonic() + policy.timeout
    location = (app.repo_url or "").strip()
    if not location:
        raise RepoError(f"app {app.slug} has no repository configured")
    if (
        not ref
        or ref.startswith(("-", "/"))
        or ref.endswith(("/", ".", ".lock"))
        or ".." in ref
        or "@{" in ref
        or any(ch.isspace() or ord(ch) < 32 or ch in "~^:?*[\\" for ch in ref)
    ):
        raise RefNotFound(f"{ref!r} is not a valid git ref name")
    try:
        loc = check_location(location, policy)
        if loc.scheme == "path":
            assert loc.path is not None
            repo = _local(loc.path)
            runner = _Git(url=location, loc=loc, pins=[], timeout=policy.timeout)
            return _rev_parse(runner, repo, ref, location)
        pins = [] if loc.scheme == "file" else _vetted_addresses(loc, policy)
    except RepoRefused as exc:
        raise RepoRefused(f"the app's repo_url is refused: {exc}") from None
    runner = _Git(url=location, loc=loc, pins=pins, timeout=policy.timeout)
    listed = runner.run("ls-remote", "--", location, ref, what="list the refs of")
    found = _listed_ref(listed, ref)
    if found:
        return found
    if not _SHA_LIKE.fullmatch(ref):
        raise RefNotFound(f"{_shown(location)} has no branch or tag named {ref!r}")
    mirror = Path(policy.cache_dir) / app.slug
    if (mirror / "HEAD").exists():
        with contextlib.suppress(RefNotFound):
            return _rev_parse(_left(runner, deadline), mirror, ref, location)
    resolve_repo_within(app, policy, deadline)
    return _rev_parse(_left(runner, deadline), mirror, ref, location)


def _left(runner: _Git, deadline: float) -> _Git:
    """``runner`` with what is left of the time until ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise GitTimeout(
            f"cannot check {_shown(runner.url)}: timed out after "
            f"{runner.timeout:g} s (RELGOV_GIT_TIMEOUT_SECONDS)"
        )
    return _Git(url=runner.url, loc=runner.loc, pins=runner.pins, timeout=left)


def resolve_repo_within(app: HasRepo, policy: RepoPolicy, deadline: float) -> Path:
    """:func:`resolve_repo`, giving up (:class:`GitTimeout`) at ``deadline``, lock included."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise GitTimeout(f"timed out after {policy.timeout:g} s (RELGOV_GIT_TIMEOUT_SECONDS)")
    bounded = RepoPolicy(
        root=policy.root,
        cache_dir=policy.cache_dir,
        allowed_hosts=policy.allowed_hosts,
        timeout=left,
    )
    return resolve_repo(app, bounded, lock_deadline=deadline)


def _listed_ref(listed: str, ref: str) -> str | None:
    """The commit ``ls-remote`` output gives ``ref`` (a tag's peeled commit first)."""
    names = {ref, f"refs/heads/{ref}", f"refs/tags/{ref}"}
    found: dict[str, str] = {}
    for line in listed.splitlines():
        sha, _, name = line.partition("\t")
        found[name] = sha
    for name in (f"refs/tags/{ref}^{{}}", *sorted(names)):
        if name in found:
            return found[name]
    return None


def _rev_parse(runner: _Git, repo: Path, ref: str, location: str) -> str:
    try:
        return runner.run(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo, what="read"
        )
    except GitTimeout:
        raise
    except RepoError:
        raise RefNotFound(
            f"{_shown(location)} has no branch, tag or commit named {ref!r}"
        ) from None


def _local(path: Path) -> Path:
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


@contextlib.contextmanager
def _locked(lock_path: Path, deadline: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (blocks while another worker holds it, until
    ``deadline`` at most when given: then :class:`GitTimeout`)."""
    with open(lock_path, "a+") as handle:
        if deadline is None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        else:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise GitTimeout(
                            "timed out waiting for another git command on the same "
                            "repository (RELGOV_GIT_TIMEOUT_SECONDS)"
                        ) from None
                    time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class _Git:
    """Runs git for one remote: its protocol only, no redirects, the checked addresses."""

    url: str
    loc: Location
    pins: list[IPAddress]
    timeout: float

    def run(self, *args: str, cwd: Path | None = None, what: str) -> str:
        options = ["-c", "http.followRedirects=false"]
        if self.pins and self.loc.scheme in ("http", "https") and _ip(self.loc.host) is None:
            shown = ",".join(f"[{a}]" if a.version == 6 else str(a) for a in self.pins)
            options += ["-c", f"http.curloptResolve={self.loc.host}:{self.loc.remote_port}:{shown}"]
        env = {
            **os.environ,  # child process environment
            **_GIT_ENV,
            "GIT_ALLOW_PROTOCOL": self.loc.scheme,
        }
        try:
            proc = subprocess.Popen(
                ["git", *options, *args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: killed with its helpers
            )
        except OSError as exc:
            raise RepoError(f"cannot run git: {exc.strerror}") from None
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise GitTimeout(
                f"cannot {what} {_shown(self.url)}: timed out, git did not finish within "
                f"{self.timeout:g} s (RELGOV_GIT_TIMEOUT_SECONDS)"
            ) from None
        if proc.returncode != 0:
            raise RepoError(f"cannot {what} {_shown(self.url)}: {_git_message(err, proc)}")
        return out.decode(errors="replace").strip()


def _git_message(stderr: bytes, proc: subprocess.Popen[bytes]) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (fatal or lines or [f"git exited with status {proc.returncode}"])[-1]


def _mirror(
    slug: str,
    url: str,
    loc: Location,
    pins: list[IPAddress],
    policy: RepoPolicy,
    *,
    fetch: bool,
    deadline: float | None = None,
) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", slug):
        raise RepoError(f"app slug {slug!r} cannot name a cache folder")
    cache_dir = Path(policy.cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepoError(f"cannot create repository cache {cache_dir}: {exc.strerror}") from None
    target = cache_dir / slug
    runner = _Git(url=url, loc=loc, pins=pins, timeout=policy.timeout)
    with _locked(cache_dir / f"{slug}.lock", deadline):
        if (target / "HEAD").exists():
            if fetch:
                _fetch(target, runner)
            return target.resolve()
        _clone(target, runner, cache_dir)
    return target.resolve()


def _clone(target: Path, runner: _Git, cache_dir: Path) -> None:
    # Clone next to the target and rename: a half-finished clone never looks like a mirror.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
    try:
        runner.run(
            "clone",
            "--mirror",
            "--quiet",
            "--",
            runner.url,
            str(staging / "repo.git"),
            what="clone",
        )
        if target.exists():
            shutil.rmtree(target)
        (staging / "repo.git").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(target: Path, runner: _Git) -> None:
    try:
        git.Repo(target).close()
    except git.InvalidGitRepositoryError:
        raise RepoError(f"the cached mirror {target} is damaged; delete it to re-clone") from None
    # The admin may have changed the app's URL since the mirror was made.
    try:
        current = runner.run("config", "--get", "remote.origin.url", cwd=target, what="read")
    except RepoError:
        current = ""
    if current != runner.url:
        runner.run("remote", "set-url", "origin", runner.url, cwd=target, what="use")
    runner.run("fetch", "--prune", "--tags", "--quiet", "origin", cwd=target, what="fetch")
