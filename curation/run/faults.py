"""Fault injection for the crash-safety tests: ``SFT_CURATION_CRASH_AT=<point>`` kills the run
with SIGKILL when it reaches that point (no cleanup, no ``finally``: as a power cut or the OOM
killer would). Points: ``map:<n>`` (after n batches were staged), ``checkpoint`` (the map phase
saved), ``<global stage name>`` (after it ran), ``shard:<n>`` (after n shard files were renamed
into place) and ``manifest`` (every shard written, the manifest not yet).
``SFT_CURATION_INTERRUPT_AT=<point>`` sends SIGINT to the run's whole process group there instead,
as Ctrl-C in a terminal does."""

from __future__ import annotations

import os
import signal

ENV = "SFT_CURATION_CRASH_AT"
INTERRUPT_ENV = "SFT_CURATION_INTERRUPT_AT"


def crash_point(point: str) -> None:
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(INTERRUPT_ENV) == point:
        os.killpg(os.getpgrp(), signal.SIGINT)
        signal.sigtimedwait([], 0.5)  # the handler raises KeyboardInterrupt here
