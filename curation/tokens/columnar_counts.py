"""Token counts of a whole Arrow batch of conversations, with no Python loop over its rows.

For a chat template that prints contents verbatim, each role sequence renders to a fixed
skeleton of literals with the contents in between. When every literal between two contents holds
a special token, the rendered text splits at the special tokens (never merged with the text
around them) into:

* fixed pieces (literal text, special tokens), counted once per role sequence;
* one piece per message: the literal text right before it + its content + the literal text right
  after it, up to the next special token. An assistant content is a piece of its own (the
  piecewise plan splits at its start), followed by the end-of-turn token it learns.

Only the distinct message pieces are tokenized. This is the per-row piecewise plan of
``TemplateTokenCounter`` computed on columns, and gives the same counts (tests compare the two on
random conversations and on the real data). Rows it cannot split this way (a content holding a
special token, an assistant content that is empty or starts with whitespace after literal text, a
role sequence not yet checked against a real render, or one whose skeleton does not split as
above) are counted by the per-row path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

# Python's str.isspace() at the start of a content (Unicode White_Space plus U+001C..U+001F).
_STARTS_WITH_SPACE = r"^[\s\x1c-\x1f]"
_KEY_SEP = "\x1f"  # roles are validated names, never containing it


@dataclass
class _Layout:
    """The fixed part of one role sequence's rendering, per message."""

    fixed_total: int  # tokens of all fixed pieces
    prefix: list[str]  # literal text merged before the content ("" for an assistant message)
    suffix: list[str]  # literal text merged after the content ("" for an assistant message)
    assistant: list[bool]
    eot: list[int]  # 1 when the message is an assistant turn whose end-of-turn token is learned
    fixed_before: list[int]  # fixed tokens before the message's own piece
    text_before: list[bool]  # assistant: literal text between the special token and the content


def _split_at_specials(counter, literal: str) -> tuple[list[str], list[str]]:
    texts, specials, pos = [], [], 0
    for m in counter.added_re.finditer(literal):
        texts.append(literal[pos : m.start()])
        specials.append(m.group())
        pos = m.end()
    texts.append(literal[pos:])
    return texts, specials


def layout(counter, roles: tuple[str, ...]) -> _Layout | None:
    """The layout of one role sequence, or None when its rows must take the per-row path."""
    skeleton = counter._skeleton_for(roles)
    eot = counter.eot
    if (
        skeleton is None
        or not counter.verbatim
        or roles not in counter._checked
        or counter.added_re is None
        or (eot and eot not in counter.spec.added_tokens)
    ):
        return None
    n = len(roles)
    parts = [_split_at_specials(counter, lit) for lit in skeleton]
    if any(not specials for _, specials in parts[1:n]):
        return None  # two contents in one piece
    lengths = dict(zip(*_unique_lengths(counter, [t for texts, _ in parts for t in texts]), strict=True))
    out = _Layout(0, [], [], [], [], [], [])
    texts, specials = parts[0]
    before_first = texts[:-1] if n else texts  # the last text of the first literal joins message 0
    fixed = sum(lengths[t] for t in before_first) + len(specials)
    for j, role in enumerate(roles):
        tail = parts[j][0][-1]
        next_texts, next_specials = parts[j + 1]
        head = next_texts[0]
        if role == "assistant":
            # The content must start a pre-token (right after a special token, or after a newline)
            # and end at a special token, as the per-row plan requires.
            if head or not next_specials or (tail and not tail.endswith("\n")):
                return None
            fixed += lengths[tail]
            out.prefix.append("")
            out.suffix.append("")
            out.eot.append(int(bool(eot) and skeleton[j + 1].startswith(eot)))
            out.text_before.append(bool(tail))
        else:
            out.prefix.append(tail)
            out.suffix.append(head)
            out.eot.append(0)
            out.text_before.append(False)
        out.assistant.append(role == "assistant")
        out.fixed_before.append(fixed)
        last = j + 1 == n
        standalone = next_texts[1:] if last else next_texts[1:-1]
        fixed += sum(lengths[t] for t in standalone) + len(next_specials)
    out.fixed_total = fixed
    return out


def _unique_lengths(counter, texts: list[str]) -> tuple[list[str], list[int]]:
    unique = list(dict.fromkeys(texts))
    return unique, counter._piece_lengths(unique)


def count_columnar(counter, messages: pa.Array | pa.ChunkedArray, out) -> np.ndarray:
    """Fill ``out`` (TokenCounts) for the rows this path can count; return the other rows' indices."""
    if isinstance(messages, pa.ChunkedArray):
        messages = messages.combine_chunks()
    n = len(messages)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    flat = pc.list_flatten(messages)
    row = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = messages.offsets.to_numpy()[:-1] - messages.offsets[0].as_py()  # first message of each row
    i = np.arange(len(row), dtype=np.int64) - starts[row]
    roles = pl.from_arrow(flat.field("role"))
    content = pl.from_arrow(flat.field("content"))
    row_keys = (
        pl.DataFrame({"row": row, "role": roles})
        .group_by("row", maintain_order=True)
        .agg(key=pl.col("role").str.join(_KEY_SEP))
    )

    # One layout per role sequence; its per-message attributes laid end to end.
    layouts: list[_Layout] = []
    key_ids: dict[str, int] = {}
    examples = row_keys.unique(subset="key", keep="first", maintain_order=True)
    for key, example in zip(examples["key"].to_list(), examples["row"].to_list(), strict=True):
        roles_of = tuple(key.split(_KEY_SEP))
        lay = counter.layouts.get(roles_of)
        if lay is None:
            if roles_of not in counter._checked:  # its skeleton is checked on a real render first
                counter.prepare({roles_of: messages[example].as_py()})
            lay = counter.layouts[roles_of] = layout(counter, roles_of)
        if lay is not None:
            key_ids[key] = len(layouts)
            layouts.append(lay)
    if not layouts:
        return np.arange(n, dtype=np.int64)
    lid_of_row = np.full(n, -1, dtype=np.int64)
    lid_of_row[row_keys["row"].to_numpy()] = (
        row_keys["key"].replace_strict(key_ids, default=-1, return_dtype=pl.Int64).to_numpy()
    )
    sizes = np.array([len(lay.prefix) for lay in layouts], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    lid = lid_of_row[row]
    has_layout = lid >= 0
    at = np.where(has_layout, base[np.maximum(lid, 0)] + i, 0)  # index into the per-message attributes

    def attr(name, dtype):
        return np.array([v for lay in layouts for v in getattr(lay, name)], dtype=dtype)[at]

    assistant = attr("assistant", bool) & has_layout
    text_before = attr("text_before", bool)
    prefix = pl.Series([v for lay in layouts for v in lay.prefix], dtype=pl.String).gather(at)
    suffix = pl.Series([v for lay in layouts for v in lay.suffix], dtype=pl.String).gather(at)
    checks = pl.DataFrame({"content": content, "assistant": assistant, "text_before": text_before}).select(
        special=pl.col("content").str.contains(counter.added_re.pattern),
        bad_start=pl.col("assistant")
        & (
            (pl.col("content") == "")
            | (pl.col("text_before") & pl.col("content").str.contains(_STARTS_WITH_SPACE))
        ),
    )
    bad_msg = ~has_layout | checks["special"].to_numpy() | checks["bad_start"].to_numpy()
    bad_row = np.bincount(row, weights=bad_msg, minlength=n) > 0
    bad_row[lid_of_row < 0] = True
    good = ~bad_row[row]
    if good.any():
        g_row = row[good]
        pieces = pl.DataFrame({"p": prefix.filter(good), "c": content.filter(good), "s": suffix.filter(good)})
        pieces = pieces.select(pl.concat_str(["p", "c", "s"]))["p"]
        unique, lengths = _unique_lengths(counter, pieces.unique().to_list())
        k = pieces.replace_strict(unique, lengths, return_dtype=pl.Int64).to_numpy()
        g_asst = assistant[good]
        eot = attr("eot", np.int64)[good]
        fixed_before = attr("fixed_before", np.int64)[good]
        total = np.bincount(g_row, weights=k, minlength=n).astype(np.int64)
        total += np.array([lay.fixed_total for lay in layouts], dtype=np.int64)[np.maximum(lid_of_row, 0)]
        completion = np.bincount(g_row, weights=k * g_asst + eot, minlength=n).astype(np.int64)
        # Tokens before the first assistant content: fixed ones, and the pieces of earlier messages.
        excl = np.cumsum(k) - k
        first_of_row = np.flatnonzero(np.r_[True, g_row[1:] != g_row[:-1]])
        row_base = np.zeros(n, dtype=np.int64)
        row_base[g_row[first_of_row]] = excl[first_of_row]
        before = fixed_before + excl - row_base[g_row]
        first = np.full(n, -1, dtype=np.int64)
        a_rows, a_first = np.unique(g_row[g_asst], return_index=True)
        first[a_rows] = before[g_asst][a_first]
        rows = np.flatnonzero(~bad_row)
        out.total_tokens[rows] = total[rows]
        out.completion_tokens[rows] = completion[rows]
        out.prompt_tokens[rows] = total[rows] - completion[rows]
        out.first_completion_token[rows] = first[rows]
    return np.flatnonzero(bad_row).astype(np.int64)
