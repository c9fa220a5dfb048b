"""Modules a map-stage worker needs, imported once by the fork server (see engine.worker_context).

Importing is all it does: no thread pool is started, so forking after it is safe.

Thread pools are sized for one process per core before the libraries start them. BLAS gets one
thread (see curation/run/blas_threads.py): OpenBLAS then starts no threads at all in the server or
its workers, which costs less than stopping them later (the workers do that too, for a server
whose main module had imported numpy already). polars gets one thread per worker: with one
process per core a second thread only takes the core from the other process (on the real data,
2 processes: 2.68 -> 2.40 s, median of 6 pairs, faster in each pair).
"""

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # read once, when numpy loads OpenBLAS
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["POLARS_MAX_THREADS"] = "1"  # read once, when polars starts its thread pool

import numpy  # noqa: F401
import polars  # noqa: F401
import pyarrow  # noqa: F401
import tiktoken  # noqa: F401
import tokenizers  # noqa: F401

import curation.stages  # noqa: F401
from curation.stages.langid import _numpy_model

_numpy_model()  # the language model (~0.05 s), loaded once and shared by every forked worker
