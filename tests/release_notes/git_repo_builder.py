"""Builds small real git repositories in tmp_path for the release-notes tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class GitRepo:
    """A throw-away repository; commits are empty and dated one minute apart."""

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
    ) -> str:
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
