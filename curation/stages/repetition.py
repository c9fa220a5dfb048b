"""Repetition on assistant turns: degenerate loops, not parallel structure.

A model that loops says the same thing back to back: a phrase or sentence again and again, a
periodic tail that runs to the token limit, the same line many times. Lists whose items share a
pattern, step-by-step math whose lines repeat their phrasing, code, tables and song choruses
repeat too, but not back to back, and are not loops. Scores (per assistant turn; the row keeps
the worst turn), computed with numpy over all words of a batch at once:

* ``rep_loop_words``: the longest span of tokens (words, numbers, emoji) that is one unit
  repeated back to back at least ``min_repeats`` times (a unit of 1 to ``max_period`` tokens);
* ``rep_loop_copies``: the most copies of one unit back to back, however short ("instructive,
  instructive, ..."; words and emoji, not numbers; not in code);
* ``rep_loop_lines``: how many substantial lines (3+ words) repeat an earlier line of the turn,
  when they are at least ``min_repeats`` and ``max_line_share`` of its lines: an answer that
  restarts itself, a list or table that cycles through the same items (verse, whose chorus
  comes back by design, is left to the span rule: content_kinds says which turns are verse);
  or the longest run of one line printed back to back, in any text;
* ``rep_repeated_text_share``: the share of a turn's words in lines that repeat an earlier line
  (a paragraph or list pasted a second time);
* ``rep_compression`` / ``rep_compression_code``: LZ4-compressed size over size, the least over
  prose and over code turns: a loop of any unit compresses to almost nothing.

Gopher's repetition statistics (Rae et al. 2021) are still available as opt-in thresholds; they
measure structure rather than loops, and on the labelled real rows (bench/quality) they rejected
correct GSM8K solutions, lists and code, so none is on by default. Their scores, when enabled:

* ``rep_unique_word_ratio``: distinct words / words (the tutorial heuristic, on long turns only);
* ``rep_dup_line_frac`` / ``rep_dup_line_char_frac``: lines (chars in lines) that repeat an earlier line;
* ``rep_top_{n}gram_frac`` (n = 2, 3, 4): share of word characters covered by the most frequent n-gram;
* ``rep_dup_{n}gram_frac`` (n = 5..10): share of word characters inside n-grams that occur more than once.

The last three families are Gopher's repetition filters (Rae et al. 2021, "Scaling Language
Models: Methods, Analysis & Insights from Training Gopher", Table A1: dup lines 0.30, dup line
chars 0.20, top 2/3/4-gram 0.20/0.18/0.16, dup 5..10-gram 0.15..0.10). The line thresholds are
Gopher's; the n-gram ones are loosened for short SFT answers (RepetitionConfig says how).

Fenced code blocks are left out (code legitimately repeats tokens) and short turns are not scored,
so lists, tables and code pass while a paragraph that repeats itself does not. The n-gram
statistics are computed with numpy over all words of the batch at once (hashes, sort-based
counting, no per-row Python loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from curation.stages.base import Stage
from curation.stages.content import assistant_turns
from curation.stages.plain_config import config_or_default
from curation.stages.turns import CODE_FENCE_RE, has_words, single_spaced

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import RepetitionConfig

_MIX = np.uint64(0x9E3779B97F4A7C15)
TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)


def _group_counts(keys: np.ndarray) -> np.ndarray:
    """For each key occurrence: how often that key occurs (hash group-by in polars)."""
    return pl.DataFrame({"k": keys}).select(pl.len().over("k")).to_series().to_numpy()


def repetition_scores(texts: list[str] | pl.Series, min_words: int) -> dict[str, np.ndarray]:
    """Repetition scores for each text (NaN where a text has fewer than min_words words)."""
    n_docs = len(texts)
    docs = pl.DataFrame({"text": pl.Series(texts, dtype=pl.String)}).with_row_index("doc")
    docs = docs.with_columns(pl.col("text").str.replace_all(CODE_FENCE_RE, " "))
    # Only texts long enough to be scored are split into lines and words.
    docs = docs.filter(has_words(pl.col("text"), min_words))
    out = {k: np.full(n_docs, np.nan) for k in _score_names()}

    # Lines.
    lines = (
        docs.select("doc", line=pl.col("text").str.split("\n"))
        .explode("line")
        .with_columns(pl.col("line").str.strip_chars())
        .filter(pl.col("line") != "")
        .with_columns(
            chars=pl.col("line").str.len_chars(), first=pl.struct("doc", "line").is_first_distinct()
        )
    )
    line_stats = lines.group_by("doc").agg(
        n=pl.len(),
        dup=(~pl.col("first")).sum(),
        chars=pl.col("chars").sum(),
        dup_chars=pl.col("chars").filter(~pl.col("first")).sum(),
    )

    # Words, flattened over the batch: doc ids are contiguous and positions ascend within a doc.
    words = (
        docs.select(
            "doc", word=single_spaced(pl.col("text").str.to_lowercase()).str.strip_chars(" ").str.split(" ")
        )
        .explode("word")
        .filter(pl.col("word") != "")
        .with_columns(h=pl.col("word").hash(seed=7), wlen=pl.col("word").str.len_chars())
    )
    doc = words["doc"].to_numpy().astype(np.int64)
    h = words["h"].to_numpy()
    wlen = words["wlen"].to_numpy().astype(np.float64)
    n_words = np.bincount(doc, minlength=n_docs)
    word_chars = np.bincount(doc, weights=wlen, minlength=n_docs)
    scored = n_words >= min_words
    if not scored.any():
        return out
    starts = np.concatenate([[0], np.cumsum(n_words)[:-1]])
    pos = np.arange(len(doc)) - starts[doc]
    remaining = n_words[doc] - pos  # words from this position to the end of the doc
    doc_salt = doc.astype(np.uint64) * _MIX

    # Unique word ratio.
    # One entry per distinct (doc, word); doc-salted 64-bit hashes practically never collide.
    uniq_docs = np.bincount(_doc_of_unique(h, doc, doc_salt), minlength=n_docs)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rep_unique_word_ratio"] = np.where(scored, uniq_docs / np.maximum(n_words, 1), np.nan)

    # Rolling n-gram hashes: g_n[i] = mix(g_{n-1}[i], h[i+n-1]), kept only for the candidate
    # starts i: positions whose n-gram fits in its doc, in docs that still repeat something (a doc
    # with no repeated n-gram has no repeated (n+1)-gram either; most docs drop out after n = 2
    # or 3). Both conditions only ever drop positions, so every array shrinks pass after pass.
    for name in out:
        if name.startswith(("rep_top_", "rep_dup_")) and "line" not in name:
            out[name] = np.where(scored, 0.0, np.nan)
    cand = np.flatnonzero(scored[doc])
    g, gchars = h[cand], wlen[cand]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for n in range(2, max(DUP_NS) + 1):
            fits = remaining[cand] >= n
            cand, g, gchars = cand[fits], g[fits], gchars[fits]
            if len(cand) == 0:
                break
            g = (g * _MIX) ^ h[cand + (n - 1)]
            gchars = gchars + wlen[cand + (n - 1)]
            cand_doc = doc[cand]
            keys = g ^ doc_salt[cand]
            if n in TOP_NS:  # occurrence counts are needed; for the longer n-grams only "repeated"
                counts = _group_counts(keys)
                repeated = counts > 1
            else:
                repeated = pl.Series(keys).is_duplicated().to_numpy()
            rep_docs = cand_doc[repeated]
            if n in TOP_NS:
                # Characters covered by the most frequent n-gram of each doc (Gopher counts
                # occurrences x n-gram characters, for n-grams that occur more than once).
                top = np.zeros(n_docs)
                np.maximum.at(top, rep_docs, counts[repeated] * gchars[repeated])
                out[f"rep_top_{n}gram_frac"] = np.where(scored, np.minimum(top / word_chars, 1.0), np.nan)
            if n in DUP_NS:
                # Words inside a repeated n-gram: the n positions from each repeated start.
                covered = np.zeros(len(doc), dtype=bool)
                starts_rep = cand[repeated]
                for k in range(n):
                    covered[starts_rep + k] = True
                at = np.flatnonzero(covered)
                dup_chars = np.bincount(doc[at], weights=wlen[at], minlength=n_docs)
                out[f"rep_dup_{n}gram_frac"] = np.where(scored, dup_chars / word_chars, np.nan)
            # Only docs with a repeated n-gram go on to n + 1.
            still = np.zeros(n_docs, dtype=bool)
            still[rep_docs] = True
            keep = still[cand_doc]
            cand, g, gchars = cand[keep], g[keep], gchars[keep]

    ls = line_stats.to_dict(as_series=False)
    ldoc = np.asarray(ls["doc"], dtype=np.int64)
    if len(ldoc):
        dup_line = np.full(n_docs, np.nan)
        dup_line_chars = np.full(n_docs, np.nan)
        dup_line[ldoc] = np.asarray(ls["dup"]) / np.asarray(ls["n"])
        dup_line_chars[ldoc] = np.asarray(ls["dup_chars"]) / np.maximum(np.asarray(ls["chars"]), 1)
        out["rep_dup_line_frac"] = np.where(scored, dup_line, np.nan)
        out["rep_dup_line_char_frac"] = np.where(scored, dup_line_chars, np.nan)
    return out


def _doc_of_unique(h: np.ndarray, doc: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """The doc of each distinct (doc, word) key: its first occurrence (a hash pass, no sort)."""
    return doc[pl.Series(h ^ salt).is_first_distinct().to_numpy()]


def _score_names() -> list[str]:
    return [
        "rep_unique_word_ratio",
        "rep_dup_line_frac",
        "rep_dup_line_char_frac",
        *(f"rep_top_{n}gram_frac" for n in TOP_NS),
        *(f"rep_dup_{n}gram_frac" for n in DUP_NS),
    ]


# Loops are found on tokens: words, numbers and single pictographs (emoji), punctuation dropped, so
# "A-B-C-A-B-C", "😹😹😹" and "(x)+(x)+(x)+" repeat as clearly as words do. List markers at the
# start of a line are dropped, so "1. I love you 2. I love you 3. I love you" is one unit three times.
_TOKEN = r"\p{L}[\p{L}\p{M}'’]*|\p{N}+|\p{So}"
_LIST_MARKER = r"^\s*(?:\(?\d{1,3}[.)]|[-*+•])\s+"
# A line long enough that two copies of it are not a coincidence: three words (a table row of
# numbers shown twice is not a loop).
_SUBSTANTIAL_LINE = r"(?:\p{L}+\P{L}+){2,}\p{L}"
MIN_REPEATED_TOKENS = 30  # about two sentences


def line_tokens(t: pl.DataFrame) -> pl.DataFrame:
    """One row per line of each turn of ``t`` (fenced code left out): doc (the turn's index), kind,
    and the line's lower-cased tokens, list marker dropped. Both the span rule (the tokens in a
    row) and the line rules (the lines as keys) read it, so every text is tokenized once."""
    return (
        t.select(
            pl.int_range(pl.len()).alias("doc"),
            "kind",
            line=pl.col("content").str.replace_all(CODE_FENCE_RE, " ").str.split("\n"),
        )
        .explode("line")
        .select(
            "doc",
            "kind",
            tokens=pl.col("line").str.replace(_LIST_MARKER, "").str.to_lowercase().str.extract_all(_TOKEN),
            substantial=pl.col("line").str.contains(_SUBSTANTIAL_LINE),
        )
    )


def loop_scores(
    lines: pl.DataFrame, n_docs: int, min_repeats, max_period: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each doc of ``lines`` (from ``line_tokens``): the longest span of tokens made of one unit
    repeated back to back at least ``min_repeats`` times (a number, or one per doc; 0 when there is
    none), and the most copies of any unit of words or emoji back to back (1 when nothing repeats)."""
    need = np.broadcast_to(np.asarray(min_repeats, dtype=np.int64), (n_docs,))
    words = (
        lines.select("doc", word=pl.col("tokens"))
        .explode("word")
        .drop_nulls("word")
        .with_columns(h=pl.col("word").hash(seed=3), wordy=pl.col("word").str.contains(r"^[\p{L}\p{So}]"))
    )
    best = np.zeros(n_docs, dtype=np.int64)
    copies = np.ones(n_docs, dtype=np.int64)
    if words.height < 2:
        return best, copies
    doc = words["doc"].to_numpy().astype(np.int64)
    h = words["h"].to_numpy()
    wordy = words["wordy"].to_numpy()
    for p in range(1, max_period + 1):
        if len(h) <= p:
            break
        same = (h[:-p] == h[p:]) & (doc[:-p] == doc[p:])
        if not same.any():
            continue
        edges = np.diff(same.view(np.int8), prepend=0, append=0)
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        run = ends - starts  # tokens equal to the token p before them, in a row
        # Copies of a unit of words or emoji: "[7,7,7,7,7,7,7]" in an example is data, not a loop.
        np.maximum.at(copies, doc[starts], np.where(wordy[starts], (run + p) // p, 1))
        loops = run >= (need[doc[starts]] - 1) * p  # the unit, then min_repeats - 1 copies of it
        if loops.any():
            np.maximum.at(best, doc[starts[loops]], run[loops] + p)
    return best, copies


def compression_ratios(texts: pl.Series, min_bytes: int) -> np.ndarray:
    """LZ4-compressed size / size of each text of ``min_bytes`` or more (NaN for shorter ones).

    A loop compresses to almost nothing whatever its unit (a phrase, a block of lines, one word
    with no spaces repeated a thousand times); prose and lists stay well above: on the labelled
    rows of bench/quality no answer without a loop is under 0.295 (0.247 for code), and 34
    loops are under 0.25 (0.2 for code). LZ4 (pyarrow's codec) rather than zlib: ~3 us a text
    instead of ~19 us, zlib's set-up for each call costing more than the compression itself.
    """
    out = np.full(len(texts), np.nan)
    long = (texts.str.len_bytes() >= min_bytes).fill_null(False).arg_true().to_numpy()
    for i, text in zip(long, texts.gather(long).to_list(), strict=True):
        raw = text.encode()
        out[i] = len(pa.compress(raw, codec="lz4", asbytes=True)) / len(raw)
    return out


def line_loop_scores(
    t: pl.DataFrame, lines: pl.DataFrame, min_repeats: int, max_line_share: float, min_line_run: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per turn of ``t`` (``lines`` from ``line_tokens``): how many
    substantial lines (3+ words) repeat an earlier line of the turn (list markers, case and
    punctuation ignored), when they are at least ``min_repeats`` and ``max_line_share`` of its
    substantial lines, or the longest run of one line printed back to back (any text) when it
    reaches ``min_line_run``; 0 otherwise. Verse is left out of the first rule (a chorus comes
    back by design) and so is code (whose lines repeat by design): their loops are back to back,
    and the span rule, the run of lines or the compression ratio sees them.

    Also returns, per turn, the share of the tokens of its substantial lines that lie in lines
    repeating an earlier one (an answer that pastes a whole paragraph or list a second time)."""
    # One line printed back to back, in any text (code too): a model writing "| |" or "\\" to the
    # token limit, which a long answer's other content keeps from compressing away.
    runs = (
        t.select(pl.int_range(pl.len()).alias("doc"), line=pl.col("content").str.split("\n"))
        .explode("line")
        .with_columns(pl.col("line").str.strip_chars())
        .filter(pl.col("line") != "")
        .select("doc", run=pl.col("line").rle_id().over("doc"))
        .group_by("doc", "run")
        .agg(n=pl.len())
        .group_by("doc")
        .agg(longest=pl.col("n").max())
        .filter(pl.col("longest") >= min_line_run)
    )
    keyed = (
        lines.with_columns(n_tokens=pl.col("tokens").list.len())
        .filter(~pl.col("kind").is_in(["verse", "code"]) & pl.col("substantial"))
        .with_columns(key=pl.col("tokens").list.join(" "))
        .with_columns(repeat=~pl.col("key").is_first_distinct().over("doc"))
    )
    per_doc = keyed.group_by("doc").agg(
        n=pl.len(),
        dup=pl.col("repeat").sum(),
        tokens=pl.col("n_tokens").sum(),
        dup_tokens=pl.col("n_tokens").filter(pl.col("repeat")).sum(),
    )
    out = np.zeros(t.height, dtype=np.int64)
    share = np.zeros(t.height)
    if per_doc.height:
        n, dup = per_doc["n"].to_numpy(), per_doc["dup"].to_numpy()
        docs = per_doc["doc"].to_numpy()
        out[docs] = np.where((dup >= min_repeats) & (dup >= max_line_share * n), dup, 0)
        dup_tokens = per_doc["dup_tokens"].to_numpy()
        # A pasted paragraph or list: enough words that two items named twice are not one.
        share[docs] = np.where(
            dup_tokens >= MIN_REPEATED_TOKENS, dup_tokens / np.maximum(per_doc["tokens"].to_numpy(), 1), 0.0
        )
    if runs.height:
        docs = runs["doc"].to_numpy()
        out[docs] = np.maximum(out[docs], runs["longest"].to_numpy())
    return out, share


class RepetitionStage(Stage):
    name = "repetition"

    def __init__(self, cfg: RepetitionConfig | None = None):
        self.cfg = config_or_default(cfg, "RepetitionConfig")

    def _gopher_checks(self) -> list[tuple[str, float]]:
        c = self.cfg
        checks = [
            ("rep_dup_line_frac", c.max_dup_line_frac),
            ("rep_dup_line_char_frac", c.max_dup_line_char_frac),
            *((f"rep_top_{n}gram_frac", t) for n, t in sorted((c.max_top_ngram_char_frac or {}).items())),
            *((f"rep_dup_{n}gram_frac", t) for n, t in sorted((c.max_dup_ngram_char_frac or {}).items())),
        ]
        return [(col, t) for col, t in checks if t is not None]

    def score(self, batch):
        c = self.cfg
        t = assistant_turns(batch)
        rows = t["row"].to_numpy()
        code = (t["kind"] == "code").to_numpy()
        # Code repeats short token sequences by design (a regex's three octets, a zero matrix):
        # in code a loop needs two copies more.
        tokens = line_tokens(t)
        span, copies = loop_scores(
            tokens, t.height, np.where(code, c.min_repeats + 2, c.min_repeats), c.max_period
        )
        ratio = compression_ratios(t["content"], c.min_compress_chars)
        lines, repeated_share = line_loop_scores(t, tokens, c.min_repeats, c.max_line_share, c.min_line_run)
        per_turn = {
            "rep_loop_words": span,
            # Code repeats short units by design ("0, 0, 0, 0, 0, 0"): copies count outside code.
            "rep_loop_copies": np.where(code, 1, copies),
            "rep_loop_lines": lines,
            "rep_repeated_text_share": repeated_share,
            "rep_compression": np.where(code, np.nan, ratio),
            "rep_compression_code": np.where(code, ratio, np.nan),
        }
        gopher = bool(self._gopher_checks()) or c.min_unique_word_ratio is not None
        if gopher:
            per_turn.update(repetition_scores(t["content"], c.min_words))
        df = pl.DataFrame({"row": rows, **per_turn}).fill_nan(None)
        worst_low = {"rep_unique_word_ratio", "rep_compression", "rep_compression_code"}
        agg = df.group_by("row").agg(
            *(pl.col(k).min() if k in worst_low else pl.col(k).max() for k in per_turn)
        )
        result = {}
        for name in per_turn:
            integer = name.startswith("rep_loop")
            col = np.zeros(batch.num_rows, dtype=np.int64) if integer else np.full(batch.num_rows, np.nan)
            vals = agg[name].fill_null(0 if integer else np.nan).to_numpy()
            col[agg["row"].to_numpy()] = vals
            result[name] = col
        return result

    def decide(self, batch):
        c = self.cfg
        reasons = np.full(batch.num_rows, None, dtype=object)

        def col(name):
            return batch[name].to_numpy(zero_copy_only=False)

        # Later checks overwrite earlier ones: the loop rules, last, name the reason.
        with np.errstate(invalid="ignore"):  # NaN: a turn too short to score
            if c.min_unique_word_ratio is not None and "rep_unique_word_ratio" in batch.column_names:
                reasons[col("rep_unique_word_ratio") < c.min_unique_word_ratio] = (
                    "repetition:unique_word_ratio"
                )
            for column, limit in reversed(self._gopher_checks()):  # the first in list order wins
                if column in batch.column_names:
                    reasons[col(column) > limit] = f"repetition:{column.removeprefix('rep_')}"
            squeezed = (col("rep_compression") < c.max_compression_ratio) | (
                col("rep_compression_code") < c.max_compression_ratio_code
            )
            reasons[squeezed] = "repetition:compresses"
            reasons[col("rep_loop_copies") >= c.min_copies] = "repetition:repeated_unit"
            reasons[col("rep_repeated_text_share") >= c.max_repeated_text_share] = "repetition:repeated_text"
            reasons[col("rep_loop_lines") >= c.min_repeats] = "repetition:repeated_line"
            reasons[col("rep_loop_words") >= c.min_loop_words] = "repetition:repeated_span"
        return reasons
