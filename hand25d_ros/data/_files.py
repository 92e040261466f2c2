"""Writing the renderer's ``.npz`` files (shards, the cutout bank) whole or not at all."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def savez_replacing(path: Path, **arrays) -> None:
    """``np.savez`` (uncompressed: readers memory-map the members) into a hidden part file
    beside ``path``, then renamed over it. Stopped while writing (Ctrl-C, SIGTERM), the part
    file is removed: nothing else ever would, and it is as large as the file. The part file is
    named by the process id, as two runs may write the same ``path`` at once."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
