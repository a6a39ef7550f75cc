"""Process bookkeeping shared by the dataset writer and the architecture search."""

from __future__ import annotations

import os


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
