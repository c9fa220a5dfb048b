"""Modules a map-stage worker needs, imported once by the fork server (see engine.worker_context).

Importing is all it does: no thread pool is started, so forking after it is safe.
"""

import numpy  # noqa: F401
import polars  # noqa: F401
import pyarrow  # noqa: F401
import tiktoken  # noqa: F401
import tokenizers  # noqa: F401

import curation.stages  # noqa: F401
from curation.langid import _numpy_model

_numpy_model()  # the language model (~0.05 s), loaded once and shared by every forked worker
