"""Files written whole or not at all: weights exports, render shards, the cutout bank."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

import numpy as np


def write_replacing(path, write: Callable[[Path], object]) -> Path:
    """``write(part)`` writes a hidden part file beside ``path`` (its suffix kept), which is then
    renamed over ``path``. Stopped or failed while writing (Ctrl-C, SIGTERM, a full disk), the
    part file is removed: nothing else ever would, and it can be as large as the file. The part
    file is named by the process id, as two runs may write the same ``path`` at once."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
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
