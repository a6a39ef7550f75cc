"""Process bookkeeping shared by the dataset writer, the model cache and the search.

Temporary files are named ``<name>.tmp-<pid>@<host>.<token>`` (:func:`temporary_path`): the
host and process id say who writes it, the random token keeps two writers of one file in
one process (threads) apart. :func:`writer_gone` decides whether such a file may be
deleted: only if its writer is provably dead (same host, process gone) or the file has not
been touched for :data:`STALE_AGE` seconds (a writer on another host sharing the folder, or
a file of the old ``<name>.tmp-<pid>`` form whose host is unknown).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from pathlib import Path

#: A temporary file untouched this long (seconds) is abandoned whoever wrote it: one day.
STALE_AGE = 24 * 3600.0

_TMP_NEW = re.compile(r"\.tmp-(?P<pid>\d+)@(?P<host>[A-Za-z0-9._-]+)\.[0-9a-f]{8}$")
_TMP_OLD = re.compile(r"\.tmp-(?P<pid>\d+)$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host is running (a zombie counts as dead).

    Used to tell an interrupted writer or search worker (its leftovers may be cleaned up)
    from one that is still working.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a killed worker whose parent died may linger unreaped as a zombie
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def hostname() -> str:
    """This host's name, reduced to the characters ``[A-Za-z0-9._-]`` (safe in file names)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


def temporary_path(path: str | Path) -> Path:
    """A fresh temporary name next to ``path``, unique to this host, process and call."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}@{hostname()}.{secrets.token_hex(4)}")


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is named like a temporary of :func:`temporary_path` (or the old form)."""
    name = Path(path).name
    return bool(_TMP_NEW.search(name) or _TMP_OLD.search(name))


def writer_gone(path: str | Path, *, max_age: float = STALE_AGE, now: float | None = None) -> bool:
    """Whether the temporary ``path`` is abandoned (see the module docstring).

    True if its writer ran on this host and is no longer running, or if the file was last
    modified more than ``max_age`` seconds ago. A file of this very process is never gone.
    """
    path = Path(path)
    new, old = _TMP_NEW.search(path.name), _TMP_OLD.search(path.name)
    if not (new or old):
        return False
    if new and new["host"] == hostname():
        pid = int(new["pid"])
        if pid == os.getpid():
            return False
        if not pid_alive(pid):
            return True
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    return age > max_age


def clean_temporaries(folder: str | Path, *, max_age: float = STALE_AGE) -> list[Path]:
    """Delete the abandoned temporaries in ``folder`` (recursively); return them.

    A temporary is abandoned when its writer ran on this host and is gone, or when it is
    older than ``max_age`` seconds (:func:`writer_gone`): a live write of another host
    sharing the folder is left alone. The dataset writer and the model cache both call it.
    """
    removed = []
    folder = Path(folder)
    if not folder.exists():
        return removed
    for tmp in folder.rglob("*.tmp-*"):
        if not writer_gone(tmp, max_age=max_age):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


#: The process whose parent :func:`exit_with_parent` watches (a forked child starts its own).
_WATCHED: int | None = None


def exit_with_parent(interval: float = 1.0, parent: int | None = None) -> None:
    """End this process soon after its parent dies (checked every ``interval`` seconds).

    Worker processes call it so that a ``kill -9`` of the search or build that started them
    does not leave them running: an orphan is re-parented, so ``os.getppid()`` changes.
    ``parent``, the pid the caller expects as its parent, catches a parent that died before
    the watch began (a worker still importing when its build was killed): it exits at once.
    """
    import threading

    global _WATCHED
    if _WATCHED == os.getpid():  # one watchdog per process, however often it is asked
        return
    _WATCHED = os.getpid()
    if parent is None:
        parent = os.getppid()
    elif os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
