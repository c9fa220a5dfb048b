"""Peak resident memory of a phase, sampled from /proc (Linux) in a background thread.

The thread can watch this process or another one (``PeakMemory(pid)``). A curate run is watched
from the bench's own process: a sampling thread inside the run would make it unsafe for the run
to fork its workers (``curation.run.fork_safety``), and it would take the slower fork-server path
that a real run does not take."""

from __future__ import annotations

import os
import resource
import threading
import time


def rss_bytes(pid: int | None = None) -> int:
    try:
        with open(f"/proc/{pid or os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        if pid is not None:  # it has ended
            return 0
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


def children_rss_bytes(pid: int | None = None) -> int:
    """Resident memory of every live descendant process of ``pid`` (default: this process):
    worker processes, a fork server's workers, a local Ray's processes."""
    total = 0
    todo = _children(pid or os.getpid())
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
    """``with PeakMemory() as m: ...``; then m.peak (bytes, the process + its descendants, sampled
    together), m.peak_self, m.peak_children and m.start. ``pid``: the process to watch (default:
    this one)."""

    def __init__(self, pid: int | None = None, interval: float = 0.01):
        self.pid = pid
        self.interval = interval
        self.peak = 0  # this process + its children, sampled together
        self.peak_self = 0
        self.peak_children = 0  # all live children together
        self.start = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            own, kids = rss_bytes(self.pid), children_rss_bytes(self.pid)
            self.peak_self = max(self.peak_self, own)
            self.peak_children = max(self.peak_children, kids)
            self.peak = max(self.peak, own + kids)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start = rss_bytes(self.pid)
        self.peak = self.peak_self = self.start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_self = max(self.peak_self, rss_bytes(self.pid))
        self.peak = max(self.peak, self.peak_self)
