"""Peak resident memory of a phase, sampled from /proc (Linux) in a background thread."""

from __future__ import annotations

import os
import resource
import threading
import time


def rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def children_rss_bytes() -> int:
    """Resident memory of every live descendant process (worker processes, a fork server's
    workers, a local Ray's processes)."""
    total = 0
    todo = _children(os.getpid())
    seen = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as g:
                total += int(g.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
        todo += _children(pid)
    return total


class PeakMemory:
    """``with PeakMemory() as m: ...``; then m.peak (bytes, this process + workers) and m.start."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak = 0  # this process + its children, sampled together
        self.peak_self = 0
        self.peak_children = 0  # all live children together
        self.start = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            own, kids = rss_bytes(), children_rss_bytes()
            self.peak_self = max(self.peak_self, own)
            self.peak_children = max(self.peak_children, kids)
            self.peak = max(self.peak, own + kids)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start = rss_bytes()
        self.peak = self.peak_self = self.start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_self = max(self.peak_self, rss_bytes())
        self.peak = max(self.peak, self.peak_self)
