"""Whether this process can start map workers by forking itself, the cheapest way to start them.

A forked worker starts in a few milliseconds with everything this process has already imported
(``curation.run.forked_workers``). A worker forked by the clean ``forkserver`` instead first pays
~0.5 s of CPU for a fresh interpreter that imports polars, numpy, pyarrow and the stages; on a
2-core machine that is a large share of a 10,000-row run, spent on the second core before it does
any work.

Forking a process copies only the thread that forks, so it is safe only while no other thread
can hold a lock or own state the child needs:

* no other Python thread (a progress bar's monitor, a notebook kernel's threads, the caller's);
* polars' thread pool not started (its threads are named ``polars-N``; a forked child would find
  the pool built but without threads, and wait forever on its first parallel operation); nor
  any Tokio runtime (polars' and others' async I/O).

polars 2 starts one thread when it is imported, ``polars-ooc-cleaner``: it deletes spill files
that it receives over a channel, and waits on that channel otherwise, holding no lock (a child
that sends to it queues requests that nobody serves: spill files, which a map stage does not
make, would stay until the run's end). It is allowed.

Other native threads are fork-aware: OpenBLAS and Arrow rebuild their pools in the child, and
Hugging Face tokenizers turns its parallelism off there. When in doubt (no ``/proc``, not Linux,
where Python itself does not fork by default) the answer is no, and the engine uses the fork
server.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading

# Native threads whose owners cannot survive a fork, and the exceptions (names as /proc shows
# them: cut to 15 characters).
UNSAFE_THREAD_PREFIXES = ("polars", "tokio")
SAFE_THREADS = frozenset({"polars-ooc-clea"})


def native_thread_names() -> list[str] | None:
    """The names of this process's threads, from /proc (None where that cannot be read)."""
    try:
        tasks = os.listdir("/proc/self/task")
        names = []
        for tid in tasks:
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    names.append(f.read().strip())
            except FileNotFoundError:  # the thread ended meanwhile
                continue
        return names
    except OSError:
        return None


def fork_is_safe() -> bool:
    """True when forking this process now cannot leave a lock held in the child (see above)."""
    if sys.platform != "linux" or "fork" not in mp.get_all_start_methods():
        return False
    if threading.active_count() > 1:
        return False
    names = native_thread_names()
    return names is not None and not any(
        n.startswith(UNSAFE_THREAD_PREFIXES) and n not in SAFE_THREADS for n in names
    )
