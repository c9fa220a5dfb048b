"""Map workers forked from the run's own process at its start, before the stages are built.

A worker forked from the clean fork server first imports polars, numpy, pyarrow and the stages
in a fresh interpreter: ~0.65 s of CPU before its first batch, a third of a 10,000-row run on a
2-core machine. A worker forked from this process has all of that already and is ready at once.
It is forked at the start of the run, when ``curation.run.fork_safety.fork_is_safe()`` says no
thread can be holding a lock the child would need (building the stages can start a polars
thread). The stages are built afterwards, here, and sent to each worker pickled, as they would
be to the fork server's workers; a worker waits for them in its initializer.

The models every process's stages load for themselves are loaded before the fork instead
(``load_shared_models``), and the workers inherit them: ~0.17 s of CPU less in each worker.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from curation.run.engine import _init_worker, die_with_parent
from curation.stages.base import Stage

if TYPE_CHECKING:
    from curation.config import StagesConfig


def load_shared_models(cfg: StagesConfig) -> None:
    """Load what the map stages would load in every process, in this one, before it forks: the
    language model (~0.07 s) and the length stage's tiktoken encoder (~0.1 s; a worker's unpickled
    counter finds it in ``curation.tokens.fast_bpe``'s cache). Only from local files and cached specs:
    a tokenizer that must come through transformers is left to the stage (loading it twice
    would cost more than it saves). Neither starts a thread (a test checks ``fork_is_safe()``)."""
    from curation.stages.langid import _numpy_model
    from curation.tokens.token_counter_cache import cached_spec

    if cfg.language.enabled:
        _numpy_model()
    if cfg.length.enabled and (spec := cached_spec(cfg.length.tokenizer)) is not None:
        from curation.tokens.token_counts import TemplateTokenCounter

        TemplateTokenCounter(spec=spec)


def _receive_stages(stages_in) -> None:
    die_with_parent()  # before waiting: a run killed now must not leave this worker blocked here
    payload = stages_in.get()
    if payload is None:  # the run ended before its stages were built: leave quietly (an exception
        os._exit(0)  # here would be logged as a failed initializer)
    _init_worker(payload)


class ForkedWorkers:
    """``n`` worker processes, forked now from this thread; ``send_stages`` once the stages exist."""

    def __init__(self, n: int):
        ctx = mp.get_context("fork")
        self.n = n
        self._stages_in = ctx.SimpleQueue()
        self.executor = ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_receive_stages, initargs=(self._stages_in,)
        )
        with warnings.catch_warnings():
            # Python >= 3.12 warns on any fork of a process with more than one thread; the threads
            # here were checked first (fork_is_safe: fork-aware native threads only).
            warnings.filterwarnings("ignore", r".*multi-threaded.*fork", DeprecationWarning)
            self.executor.submit(os.getpid)  # the first task launches (forks) every worker, now
        self._sent = False

    def send_stages(self, stages: list[Stage]) -> None:
        payload = pickle.dumps(stages)
        for _ in range(self.n):
            self._stages_in.put(payload)
        self._sent = True

    def close(self) -> None:
        """Stop the workers (waiting ones first get word that no stages come)."""
        if not self._sent:
            for _ in range(self.n):
                self._stages_in.put(None)
            self._sent = True
        self.executor.shutdown(cancel_futures=True)
