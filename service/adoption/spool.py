"""The heartbeat spool: queued heartbeats on local disk from before their answer until
their write is committed (``RELGOV_HEARTBEAT_SPOOL_DIR``).

A web process that queues heartbeats (:mod:`service.adoption.queue`) appends each request's
valid heartbeats to a file of its own, as one line, before the request is answered ``202``,
and forgets the line once the database has committed them. A process killed outright
(``SIGKILL``, out of memory, gunicorn's worker timeout) leaves its file behind with what it
had answered and not written; any web process of the machine replays it (the queue's
thread: at the process's first request, then every few seconds; see
:func:`orphans`). Replaying heartbeats already written changes nothing (a device's state
only moves forward), so a line committed just before the kill may be replayed safely.

What the file survives: the death of the process, however it dies (the line is in the
kernel's page cache once ``write`` returns). What it does not: the loss of the machine or
its disk (the file is not ``fsync``\\ ed: one ``fdatasync`` per request would cost about a
millisecond each). The database commits the same heartbeats within the flush interval.

Files. Each live process holds an exclusive ``flock`` on each of its files, so a file
whose lock can be taken belongs to a dead process (the kernel releases the lock when the
process dies). A file is made under a ``.tmp`` name, locked, then renamed, so no one sees
it unlocked; the folder must be on a local disk of the machine (``flock`` over a network
file system is not reliable) and is shared by the machine's web processes (one folder per
database: :func:`service.adoption.queue.spool_folder`). A process
appends to one segment; when every line of it has been written the segment is emptied
(``ftruncate``), and when it grows past :data:`SEGMENT_BYTES` with lines still waiting, a
new segment starts and the old one is removed once written.

A line is JSON: ``{"t": token id, "w": rate-limit window, "b": [[device_id, store_id,
channel, app, version, version_key, device_kind, sent_at], ...]}``. A line cut short (the
process died inside ``write``) belongs to a request that was never answered: it is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import secrets
import socket
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from version_monitor.ingest import ValidHeartbeat

__all__ = ["SEGMENT_BYTES", "Orphan", "Record", "Spool", "decode", "encode", "has_files", "orphans"]

_log = logging.getLogger(__name__)

SEGMENT_BYTES = 4 * 1024 * 1024  # past this, with lines still waiting, a new segment starts
SUFFIX = ".spool"
MAKING = ".tmp"


@dataclass(frozen=True)
class Record:
    """One request's heartbeats as the spool keeps them."""

    beats: list[ValidHeartbeat]
    token_id: int
    window: int


def encode(beats: Sequence[ValidHeartbeat], *, token_id: int, window: int) -> bytes:
    rows = [
        [
            hb.device_id,
            hb.store_id,
            hb.channel,
            hb.app,
            hb.version,
            hb.version_key,
            hb.device_kind,
            hb.sent_at.isoformat(),
        ]
        for hb in beats
    ]
    line = json.dumps({"t": token_id, "w": window, "b": rows}, separators=(",", ":"))
    return line.encode() + b"\n"


def decode(line: bytes) -> Record:
    data = json.loads(line)
    beats = [
        ValidHeartbeat(
            index=index,
            device_id=str(device_id),
            store_id=int(store_id),
            channel=str(channel),
            app=str(app),
            version=str(version),
            version_key=str(version_key),
            device_kind=str(device_kind),
            sent_at=datetime.fromisoformat(sent_at),
        )
        for index, (
            device_id,
            store_id,
            channel,
            app,
            version,
            version_key,
            device_kind,
            sent_at,
        ) in enumerate(data["b"])
    ]
    return Record(beats, int(data["t"]), int(data["w"]))


class Spool:
    """This process's segments in ``folder``. Not thread-safe: the queue calls it under its
    lock (so a line's ``done`` cannot cross another request's ``append``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self._files: dict[int, tuple[int, Path]] = {}  # segment -> (descriptor, path)
        self._waiting: dict[int, int] = {}  # segment -> lines not written yet
        self._current = -1  # the segment appended to (-1: none yet)
        self._size = 0  # of the current segment
        self._numbers = itertools.count()

    def append(self, line: bytes) -> int:
        """Keep ``line``; the segment it went to (pass it to :meth:`done` once written).
        Raises ``OSError`` when it could not be kept (nothing of it is left then)."""
        if self._current < 0 or (self._size >= SEGMENT_BYTES and self._waiting[self._current]):
            self._open_segment()
        fd = self._files[self._current][0]
        try:
            written = os.write(fd, line)
        except OSError:
            self._cut(fd)
            raise
        if written != len(line):  # a full disk, a quota: not kept whole
            self._cut(fd)
            raise OSError(f"the heartbeat spool kept {written} of {len(line)} bytes")
        self._size += written
        self._waiting[self._current] += 1
        return self._current

    def _cut(self, fd: int) -> None:
        """Undo a partial append (what was there before stays)."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, self._size)

    def _open_segment(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        segment = next(self._numbers)
        path = self.folder / f"{self._name}-{segment}{SUFFIX}"
        making = path.with_name(path.name + MAKING)
        fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(making, path)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                making.unlink()
            raise
        self._files[segment] = (fd, path)
        self._waiting[segment] = 0
        self._current, self._size = segment, 0

    def done(self, segment: int) -> None:
        """One line of ``segment`` was written to the database."""
        self._waiting[segment] -= 1
        if self._waiting[segment]:
            return
        if segment == self._current:
            try:
                os.ftruncate(self._files[segment][0], 0)
                self._size = 0
            except OSError:  # kept whole: replayed (harmlessly) if this process dies
                _log.warning("could not empty the heartbeat spool", exc_info=True)
        else:
            self._remove(segment)

    def _remove(self, segment: int) -> None:
        fd, path = self._files.pop(segment)
        del self._waiting[segment]
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)

    @property
    def waiting(self) -> int:
        """Lines kept and not written yet."""
        return sum(self._waiting.values())

    def close(self) -> None:
        """Let go of the files: removed when every line was written, else left (unlocked)
        for another process to replay."""
        for segment in list(self._files):
            fd, path = self._files.pop(segment)
            if not self._waiting.pop(segment):
                with contextlib.suppress(OSError):
                    path.unlink()
            os.close(fd)
        self._current = -1

    def forget(self) -> None:
        """In a forked child: close the parent's descriptors (the lock stays the parent's)
        and touch no file."""
        for fd, _path in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()
        self._waiting.clear()
        self._current = -1


class Orphan:
    """A dead process's segment, locked by this process until :meth:`remove` or
    :meth:`release`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def records(self) -> list[Record]:
        """Its lines; a line cut short or unreadable is skipped (and logged)."""
        with os.fdopen(os.dup(self._fd), "rb") as file:
            file.seek(0)
            data = file.read()
        records = []
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line:
                continue
            try:
                records.append(decode(line))
            except (ValueError, KeyError, TypeError):
                _log.warning("skipping an unreadable line %d of %s", number, self.path)
        return records

    def remove(self) -> None:
        """Replayed: delete it."""
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        """Not replayed (the database failed): unlock it for a later attempt."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def has_files(folder: Path) -> bool:
    """Whether ``folder`` holds spool files at all (whoever they belong to)."""
    try:
        with os.scandir(folder) as entries:
            return any(entry.name.endswith((SUFFIX, SUFFIX + MAKING)) for entry in entries)
    except FileNotFoundError:
        return False


def orphans(folder: Path) -> Generator[Orphan, None, None]:
    """The segments of dead processes in ``folder``, each locked while the caller handles
    it (the caller must :meth:`~Orphan.remove` or :meth:`~Orphan.release` it); files that a
    process died making are removed."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.name.endswith((SUFFIX, SUFFIX + MAKING)):
            continue
        path = Path(entry.path)
        orphan = _locked(path)
        if orphan is None:
            continue
        if path.name.endswith(MAKING):  # its maker died before writing anything to it
            orphan.remove()
            continue
        try:
            yield orphan
        finally:
            orphan.release()


def _locked(path: Path) -> Orphan | None:
    """``path`` locked by this process when no live process holds it, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # removed meanwhile
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Another process may have replayed and removed it between our open and our lock.
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    return Orphan(path, fd)
