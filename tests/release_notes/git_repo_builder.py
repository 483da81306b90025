"""Builds small real git repositories in tmp_path for the release-notes tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class GitRepo:
    """A throw-away repository; commits are dated one minute apart and empty unless they
    are given ``files`` (what patch ids and cherry-picks need)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tick = 1_700_000_000
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, input: bytes | None = None) -> str:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_DATE": f"{self._tick} +0000",
            "GIT_COMMITTER_DATE": f"{self._tick} +0000",
        }
        out = subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
            cwd=self.path,
            env=env,
            input=input,
            capture_output=True,
            check=True,
        )
        return out.stdout.decode("utf-8", "replace").strip()

    def commit(
        self,
        message: str | bytes,
        author: str = "Alice Example <alice@example.com>",
        *,
        encoding: str | None = None,
        files: dict[str, str] | None = None,
    ) -> str:
        """Commit ``message``; ``files`` (path → whole new content) are written first."""
        for name, content in (files or {}).items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            self.git("add", name)
        self._tick += 60
        raw = message.encode() if isinstance(message, str) else message
        args = ["commit", "-q", "--allow-empty", "--allow-empty-message", "--cleanup=verbatim"]
        args += [f"--author={author}", "-F", "-"]
        if encoding:
            args = ["-c", f"i18n.commitEncoding={encoding}", *args]
        self.git(*args, input=raw)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str, annotated: bool = False) -> None:
        if annotated:
            self.git("tag", "-a", name, "-m", f"release {name}")
        else:
            self.git("tag", name)

    def branch(self, name: str, start: str = "HEAD") -> None:
        self.git("checkout", "-q", "-b", name, start)

    def checkout(self, name: str) -> None:
        self.git("checkout", "-q", name)

    def merge(self, branch: str, message: str) -> str:
        self._tick += 60
        self.git("merge", "-q", "--no-ff", "-m", message, branch)
        return self.head()

    def cherry_pick(self, sha: str, *, record: bool = True, mainline: int | None = None) -> str:
        """``git cherry-pick`` onto the current branch; ``record`` adds ``-x``'s line;
        ``mainline`` picks a merge (``-m``: what it brings relative to that parent)."""
        self._tick += 60
        extra = ["-m", str(mainline)] if mainline is not None else []
        self.git("cherry-pick", *(["-x"] if record else []), *extra, sha)
        return self.head()
