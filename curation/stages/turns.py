"""Columnar views of conversations: one row per turn, for vectorized per-turn statistics."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

# Fenced code blocks (closed ones) are not prose: repetition and language id skip them.
CODE_FENCE_RE = r"(?s)```.*?```"

# Regexes that find what they look for in one pass instead of matching every word or character:
# polars pays per match, so counting the words of a text to compare with a threshold, or
# replacing every whitespace run, costs ~5x more than these.


def single_spaced(text: pl.Expr) -> pl.Expr:
    r"""``text`` with every whitespace run as one space (as ``replace_all(r"\s+", " ")``), matching
    only the runs that change: two or more whitespace characters, or one that is not a space."""
    return text.str.replace_all(r"\s{2,}|[\s--\x20]", " ")


# Above this count the repeated pattern makes a regex automaton too large: count the matches.
_MAX_REPEAT = 64


def _at_least(text: pl.Expr, n: int, unit: str, n_units) -> pl.Expr:
    if n <= 0:
        return text.str.len_bytes() >= 0  # True (null stays null), one value per row
    if n > _MAX_REPEAT:
        return text.str.count_matches(unit) >= n
    return text.str.contains(n_units(n))


def has_words(text: pl.Expr, n: int) -> pl.Expr:
    """Whether ``text`` has at least ``n`` words (runs of non-whitespace)."""
    return _at_least(text, n, r"\S+", lambda k: rf"(?:\S+\s+){{{k - 1}}}\S")


def has_letters(text: pl.Expr, n: int) -> pl.Expr:
    """Whether ``text`` has at least ``n`` letters."""
    return _at_least(text, n, r"\p{L}", lambda k: rf"(?:\p{{L}}\P{{L}}*){{{k}}}")


def turns(batch: pa.Table, roles: tuple[str, ...] | None = ("assistant",)) -> pl.DataFrame:
    """DataFrame with columns row (index in batch), turn (index in conversation), role, content.

    Rows come in conversation order (by row, then turn), so no sort is needed downstream.
    """
    messages = batch["messages"].combine_chunks()
    if isinstance(messages, pa.ChunkedArray):
        messages = messages.chunk(0) if messages.num_chunks else pa.array([], messages.type)
    flat = pc.list_flatten(messages)
    parents = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = messages.offsets.to_numpy()[:-1]
    first_index = offsets[parents] - offsets[0] if len(parents) else parents
    df = pl.DataFrame(
        {
            "row": parents,
            "turn": np.arange(len(parents), dtype=np.int64) - first_index,
            "role": pl.from_arrow(flat.field("role")),
            "content": pl.from_arrow(flat.field("content")),
        }
    )
    if roles is not None:
        df = df.filter(pl.col("role").is_in(list(roles)))
    return df


def role_texts(batch: pa.Table) -> tuple[pl.Series, pl.Series]:
    """Per row of ``batch``: its user turns joined and its assistant turns joined ("" where none),
    from one pass over the turns."""
    t = turns(batch, roles=("user", "assistant"))
    role = pl.col("role")
    joined = t.group_by("row", maintain_order=True).agg(
        user=pl.col("content").filter(role == "user").str.join("\n"),
        assistant=pl.col("content").filter(role == "assistant").str.join("\n"),
    )
    every = pl.DataFrame({"row": np.arange(batch.num_rows)}).cast({"row": joined["row"].dtype})
    rows = every.join(joined, on="row", how="left", maintain_order="left")
    return rows["user"].fill_null(""), rows["assistant"].fill_null("")


def per_row(values: pl.DataFrame, column: str, n_rows: int, fill, dtype=None) -> np.ndarray:
    """Scatter a per-row aggregate (columns ``row`` and ``column``) into an array of length n_rows."""
    out = np.full(n_rows, fill, dtype=dtype if dtype is not None else np.asarray(fill).dtype)
    if values.height:
        out[values["row"].to_numpy()] = values[column].to_numpy()
    return out
