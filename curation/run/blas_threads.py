"""One BLAS thread in the processes that run the map stages.

numpy's OpenBLAS starts a thread per core when it loads, and after each matrix product its
threads spin, waiting for the next one, before they sleep. The only products a curate run does
are the language model's small ones (a few thousand rows by 16 dimensions per batch), which one
thread does as fast. But on a 2-core machine the spinning thread took ~1.2 s of CPU in a 3 s run
on the real data, and with two processes each one's spinning thread took the core from the other:
with one BLAS thread the run took ~20% less time (2.70 -> 2.19 s, median of 4 pairs). The limit is
set through threadpoolctl, which finds the BLAS library numpy loaded (OpenBLAS, MKL or BLIS) and
calls its own ``set_num_threads``; environment variables such as ``OPENBLAS_NUM_THREADS`` only work
before numpy is imported, which a library cannot count on.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy  # noqa: F401  (loads the BLAS library the limit applies to)
from threadpoolctl import threadpool_limits


@contextmanager
def one_blas_thread():
    """The run's process: BLAS on one thread until the block ends, then as it was."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def limit_blas_to_one_thread() -> None:
    """A worker process (ours for its whole life): BLAS on one thread from now on."""
    threadpool_limits(limits=1, user_api="blas")
