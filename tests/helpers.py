from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from curation.schema import records_table


def batch_of(conversations: list[list[dict]] | list[str], source: str = "s") -> pa.Table:
    """A record batch; a plain string is a one-turn conversation with that answer."""
    convs = [
        [{"role": "user", "content": "Tell me something."}, {"role": "assistant", "content": c}]
        if isinstance(c, str)
        else c
        for c in conversations
    ]
    return records_table(convs, source)


def reasons(stage, conversations) -> list[str | None]:
    batch = stage.annotate(batch_of(conversations))
    return list(stage.decide(batch))


def chat(*turns: str, system: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    for i, t in enumerate(turns):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": t})
    return msgs


def thread_pools() -> dict:
    """The BLAS and polars thread-pool sizes of the process that calls it (run in workers)."""
    import polars as pl
    from threadpoolctl import threadpool_info

    blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return {"blas": blas, "polars": pl.thread_pool_size()}


def run_python(code: str, timeout: int = 240, quiet: bool = False) -> str:
    """The last line ``code`` prints in a fresh interpreter started in the project root (it
    must succeed); with ``quiet``, nothing on its stderr may look like a traceback."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if quiet:
        assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""
