"""The shared median timer (hand25d_ros.timing)."""
import time

from hand25d_ros.timing import median_time_s


def test_median_time_counts_warmup_apart_and_ignores_one_slow_call():
    calls, syncs = [], []
    delays = iter([0.0, 0.0, 0.05, 0.001, 0.001])   # two warm-up calls, then one slow timed call

    def fn():
        calls.append(1)
        time.sleep(next(delays))

    t = median_time_s(fn, warmup=2, runs=3, sync=lambda: syncs.append(1))
    assert len(calls) == 5
    assert len(syncs) == 4           # once after the warm-up, once after each timed call
    assert 0.001 <= t < 0.04         # the median, not the slow call
