"""Timing shared by the benchmark scripts: this shared machine's speed drifts 10-20% between
minutes, so each figure is the fastest of several passes over the same work."""

from __future__ import annotations

import resource
import time


def fastest_pass(run, items, passes, keep=None, before_pass=None):
    """Time `run(item)` over every item `passes` times: (total seconds, per-item seconds) of the
    fastest pass, and the first pass's results (the first `keep` of them). `before_pass` runs
    before each pass, untimed (e.g. emptying a cache so no pass reuses another's work)."""
    best, kept = (float("inf"), []), []
    for i in range(passes):
        if before_pass is not None:
            before_pass()
        lat = []
        t = time.perf_counter()
        for item in items:
            a = time.perf_counter()
            out = run(item)
            lat.append(time.perf_counter() - a)
            if i == 0 and (keep is None or len(kept) < keep):
                kept.append(out)
        best = min(best, (time.perf_counter() - t, lat), key=lambda x: x[0])
    return best[0], best[1], kept


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
