"""Regex search with word boundaries, 2-3x faster on ASCII text and with the same result.

A Unicode word boundary (``\\b``) keeps the regex engine that polars uses (Rust's ``regex``) off
its fast automaton, so every ``\\b`` pattern runs on the slow one over the whole text. Where all the
word characters of a text are ASCII, the ASCII word boundary ``(?-u:\\b)`` is the same assertion
(the word characters are ``[0-9A-Za-z_]`` either way; curly quotes and other non-ASCII
punctuation are word characters under neither) and the fast automaton handles it. So
``select_by_ascii`` searches those rows with the ASCII form and the other rows with the patterns
as written.

On the real data the task-type rules went from 0.19 s to 0.07 s with identical labels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl


def ascii_word_boundaries(pattern: str) -> str:
    """``pattern`` with each ``\\b`` / ``\\B`` outside a character class made ASCII
    (``(?-u:\\b)``). Other escapes, classes and the ``\\b{...}`` forms are left as they are."""
    out: list[str] = []
    i, n, depth = 0, len(pattern), 0  # depth: nesting of character classes
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if depth == 0 and nxt in "bB" and not pattern.startswith("{", i + 2):
                out.append(f"(?-u:\\{nxt})")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[" and depth > 0 and pattern.startswith(":", i + 1):  # [:alpha:] inside a class
            j = pattern.find(":]", i + 2)
            j = n if j < 0 else j + 2
            out.append(pattern[i:j])
            i = j
            continue
        if c == "[":
            depth += 1
            j = i + 1
            if pattern.startswith("^", j):
                j += 1
            if pattern.startswith("]", j):  # "[]" and "[^]": a "]" right after the opening is literal
                j += 1
            out.append(pattern[i:j])
            i = j
            continue
        if c == "]" and depth > 0:
            depth -= 1
        out.append(c)
        i += 1
    return "".join(out)


def ascii_words(*texts: pl.Expr) -> pl.Expr:
    """Whether every word character in ``texts`` is ASCII: there ``(?-u:\\b)`` and ``\\b`` agree.
    (Other characters, such as curly quotes, are not word characters under either.)"""
    return pl.all_horizontal(~t.str.contains(r"[\w&&[^\x00-\x7F]]") for t in texts)


def identity(pattern: str) -> str:
    return pattern


def select_by_ascii(
    df: pl.DataFrame, ascii: pl.Expr, exprs: Callable[[Callable[[str], str]], list[pl.Expr]]
) -> pl.DataFrame:
    """``df.select(exprs(identity))``, with the rows where ``ascii`` (``ascii_words(...)`` of the
    searched columns) holds selected with ``exprs(ascii_word_boundaries)``: ``exprs`` passes each
    regex through the function it gets."""
    mask = df.select(ascii.fill_null(True)).to_series()
    n_ascii = int(mask.sum())
    if n_ascii == df.height:
        return df.select(exprs(ascii_word_boundaries))
    if n_ascii == 0:
        return df.select(exprs(identity))
    parts = pl.concat(
        [df.filter(mask).select(exprs(ascii_word_boundaries)), df.filter(~mask).select(exprs(identity))]
    )
    positions = np.concatenate([np.flatnonzero(mask.to_numpy()), np.flatnonzero(~mask.to_numpy())])
    return parts[np.argsort(positions)]
