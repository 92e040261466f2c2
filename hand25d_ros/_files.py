"""Files written whole or not at all: weights exports, render shards, the cutout bank."""
from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ._signals import raise_if_stop_was_lost


def write_replacing(path, write: Callable[[Path], object]) -> Path:
    """``write(part)`` writes a hidden part file beside ``path`` (its suffix kept), which is then
    renamed over ``path``. Stopped or failed while writing (Ctrl-C, SIGTERM, a full disk), the
    part file is removed: nothing else ever would, and it can be as large as the file. The part
    file is named by the process id, as two runs may write the same ``path`` at once. A stop
    whose KeyboardInterrupt was swallowed while writing (``_signals.raise_if_stop_was_lost``)
    stops it before the rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")      # as PART_NAME reads it
    try:
        write(tmp)
        raise_if_stop_was_lost()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def savez_replacing(path, **arrays) -> Path:
    """``np.savez`` (uncompressed: readers memory-map the members) of ``arrays`` to the ``.npz``
    file ``path``, whole or not at all (:func:`write_replacing`)."""
    return write_replacing(path, lambda tmp: np.savez(tmp, **arrays))


# A part file's name: hidden, the file's own name, the writer's process id, ".tmp", and (for
# write_replacing) the file's suffix after it: .shard_00003.4242.tmp.npz, .cache.json.4242.tmp
PART_NAME = re.compile(r"\.(?P<stem>.+)\.(?P<pid>\d+)\.tmp(?P<suffix>\.[^.]+)?")
# A part file is written in one go (a 100 MB shard in seconds), its modification time moving
# with every write, and renamed at once. Left unmodified this long it is no longer being
# written, whatever its pid: its writer died and the pid was given to another process since
# (pids wrap, and start again after a reboot). A writer stopped this long (Ctrl-Z, a suspended
# machine) loses its part file: its rename fails and a later run writes the file again
PART_ABANDONED_S = 600.0
# A part file whose pid is no process here goes once unmodified this long: its writer is gone
# (SIGKILL, the OOM killer, the power). Not at once: a run on another machine or in another
# container writing the folder on a shared disk carries a pid that means nothing here, and its
# file, being written, was modified within the last seconds
PART_GRACE_S = 60.0


def _process_exists(pid: int) -> bool:
    if os.name != "posix":
        return True             # os.kill(pid, 0) ends the process on Windows: left to the age
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # another user's
        return True
    except (OverflowError, ValueError):
        return False            # no pid a process can have
    return True


def remove_abandoned_parts(folder, is_target: Callable[[str], bool]) -> list[Path]:
    """Remove the part files in ``folder`` (:data:`PART_NAME`) of files that ``is_target``
    names whose writer is gone: a process killed while writing (SIGKILL, the power) runs no
    clean-up, and its part file, as large as the file, stays for good. Returns those removed."""
    removed, now = [], time.time()
    for p in Path(folder).iterdir():
        m = PART_NAME.fullmatch(p.name)
        if not m or not is_target(m["stem"] + (m["suffix"] or "")):
            continue
        try:
            age_s = now - p.stat().st_mtime
            if age_s > PART_ABANDONED_S or (age_s > PART_GRACE_S and not _process_exists(int(m["pid"]))):
                p.unlink()
                removed.append(p)
        except OSError:             # renamed into place by its writer meanwhile, or a shared
            pass                    # folder's file that only its owner may remove
    return removed
