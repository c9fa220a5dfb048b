"""One polars thread in each process of a run that uses a process per core.

polars sizes its thread pool once, when it is imported: from ``POLARS_MAX_THREADS``, else one
thread per core; setting the variable afterwards changes nothing. A map worker forked from the
run's process inherits that size, so a two-process run on two cores had two pools of two threads
each: the processes' parallel polars steps took the cores from each other. On the real data
(10,876 conversations, two processes) one thread per process took the run from 1.27-1.36 s to
1.18-1.27 s (4 pairs, faster in each; then 10 pairs of bench runs: median 1.31 -> 1.24 s, faster
in 7) with a third of the involuntary context switches, and was no slower on 100,000 rows or
for the report. Workers started by the fork server get one thread the same way
(``curation.run.worker_preload``).

A program that runs curation (the CLI, the bench) calls ``one_polars_thread_per_process`` before
anything imports polars. A library caller that imported polars itself keeps its own setting.
"""

from __future__ import annotations

import logging
import os
import sys

from curation.run.resources import usable_cores

log = logging.getLogger(__name__)


def one_polars_thread_per_process(workers: int | None = None) -> bool:
    """Ask for one polars thread in this process (and so in the workers it forks) when the map
    stages may run on more than one process (``workers``: the setting; None: all cores). True
    when set; False when polars is already imported, ``POLARS_MAX_THREADS`` is set, or only one
    process will run."""
    if "POLARS_MAX_THREADS" in os.environ or (workers or usable_cores()) <= 1:
        return False
    if "polars" in sys.modules:
        log.debug("polars is already imported: its thread pool keeps the size it has")
        return False
    os.environ["POLARS_MAX_THREADS"] = "1"
    return True
