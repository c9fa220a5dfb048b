from __future__ import annotations

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
