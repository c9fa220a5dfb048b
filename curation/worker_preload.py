"""Modules a map-stage worker needs, imported once by the fork server (see engine.worker_context).

Importing is all it does: no thread pool is started, so forking after it is safe.

pandas is kept out: no stage uses it, but pyarrow imports it (~0.35 s, a third of this preload)
the first time it builds an array from Python objects; with ``import pandas`` failing in the
workers, pyarrow carries on without it.
"""

import sys

import numpy  # noqa: F401
import polars  # noqa: F401 (it only looks pandas up, and imports it on a pandas call)
import pyarrow  # noqa: F401
import tiktoken  # noqa: F401
import tokenizers  # noqa: F401


class _NoPandas:
    """A meta path finder that makes ``import pandas`` raise ImportError."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not used by the map-stage workers")
        return None


if "pandas" not in sys.modules:
    sys.meta_path.insert(0, _NoPandas())

import curation.stages  # noqa: E402, F401
from curation.langid import _fasttext_model  # noqa: E402

_fasttext_model()  # the language model (~0.1 s), loaded once and shared by every forked worker
