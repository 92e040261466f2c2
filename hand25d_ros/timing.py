"""Wall-clock timing shared by the trainer's precision choice and the benchmarks."""
from __future__ import annotations

import time
from typing import Callable


def median_time_s(fn: Callable[[], object], warmup: int, runs: int,
                  sync: Callable[[], object] = lambda: None) -> float:
    """Median seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones; ``sync``
    (e.g. ``torch.cuda.synchronize``) runs before each clock read, so that queued GPU work
    is counted. The median, since one call slowed by the rest of the machine should not
    decide."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]
