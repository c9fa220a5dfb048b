"""A tiktoken encoder equivalent to a Hugging Face byte-level BPE tokenizer, when one exists.

tiktoken's BPE runs ~2x faster per core than ``tokenizers`` (measured in bench/RESULTS.md) and
gives identical ids for byte-level BPE vocabularies with a regex pre-tokenizer (GPT-2, SmolLM,
Llama 3, Qwen style). The conversion is only used after it reproduces the HF tokenizer exactly on
a probe text set; otherwise ``None`` is returned and callers use the HF tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from functools import partial
from pathlib import Path

from curation.tokens import disk_cache

log = logging.getLogger(__name__)

# HF ByteLevel(use_regex=True) uses the GPT-2 pattern.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# The same without its lookahead: tiktoken then uses the plain `regex` engine instead of
# fancy-regex's backtracking one, ~25% faster on the real data's pieces. The lookahead only
# matters in a run of 2+ whitespace characters followed by a non-space: GPT-2 makes the run
# minus its last character one pre-token, and that last character starts the next one. A cut
# marker (an extra special token, which tiktoken splits the text at before its regex) placed
# before that last character gives the same pre-tokens (BpeEncoder).
GPT2_LOOKAHEAD_FREE = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+"""
CUT = "\U0010fffe"  # a Unicode noncharacter; a text that holds one is encoded with GPT2_PATTERN
CUT_BEFORE_LAST_SPACE = (r"(\s)(\s\S)", "${1}" + CUT + "${2}")  # polars replace_all: Rust regex \s

PROBE_TEXTS = [
    "Hello, world! It's 2026 and we're testing.",
    "  leading spaces\n\n\ttabs and\r\nnewlines   ",
    "def f(x):\n    return x ** 2  # square\n",
    "Natalia sold 48/2 = 24 clips in May. 1,234,567.89 $100%",
    "¿Cuál es la capital de Francia? París. 東京は日本の首都です。 Привет мир 🙂",
    "I'll, you'd, they've, she's, WE'RE, can't",
    "\n\n\n",
    "<|im_start|>user\nHi<|im_end|>\n",
    "a  b\t\t c \n\nd  \n 's  'll\u3000\u3000x\u00a0 y   \n",
    "  'tis\n\n  - item\n\n\n# Title    end",
]


def _byte_decoder() -> dict[str, int]:
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def _pattern(pre: dict | None) -> str | None:
    if not pre:
        return None
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return GPT2_PATTERN
    if pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers", [])
        splits = [p for p in parts if p.get("type") == "Split"]
        bl = [p for p in parts if p.get("type") == "ByteLevel"]
        if len(splits) == 1 and len(bl) == 1 and len(parts) == 2 and not bl[0].get("use_regex", True):
            pat = splits[0].get("pattern", {})
            if splits[0].get("behavior") == "Isolated" and "Regex" in pat:
                return pat["Regex"]
    return None


def _cache_path(tokenizer_json: str) -> Path:
    digest = hashlib.sha256(tokenizer_json.encode()).hexdigest()[:32]
    return disk_cache.cache_root() / "tiktoken" / f"{digest}.pkl"


class BpeEncoder:
    """A tiktoken Encoding for one pattern and vocabulary, with the GPT-2 pattern run lookahead-free.

    ``encode`` gives the ids (special tokens recognized) and ``count_pieces`` the number of tokens
    of texts holding no special tokens, both as the pattern given would: for ``GPT2_PATTERN`` the
    texts are cut before the last character of each whitespace run that a non-space follows
    (``CUT_BEFORE_LAST_SPACE``, one polars call per batch) and encoded with
    ``GPT2_LOOKAHEAD_FREE``. Texts that hold ``CUT`` themselves use an Encoding of the pattern as
    it is, built when first needed.
    """

    def __init__(self, name: str, pattern: str, ranks: dict[bytes, int], added: dict[str, int]):
        import tiktoken

        self._make = partial(tiktoken.Encoding, f"hf-{name}", mergeable_ranks=ranks)
        self.pattern, self.added = pattern, added
        # A special token holding a space could start inside a whitespace run: no cuts then.
        self.cuts = pattern == GPT2_PATTERN and not any(CUT in t or _has_space(t) for t in added)
        if self.cuts:
            self.cut_id = max([*ranks.values(), *added.values()]) + 1
            self.enc = self._make(pat_str=GPT2_LOOKAHEAD_FREE, special_tokens={**added, CUT: self.cut_id})
            self._with_cut = {CUT}
            self._exact = None  # the Encoding of `pattern` itself, for texts that hold CUT
            # tiktoken splits at special tokens before its regex, so a run that ends at one is
            # not cut: a cut followed by the run's last character and a special token goes.
            specials = "|".join(re.escape(t) for t in sorted(added, key=len, reverse=True))
            self._uncut = re.compile(f"{CUT}(?=.(?:{specials}))", re.DOTALL) if added else None
        else:
            self.enc = self._exact = self._make(pat_str=pattern, special_tokens=added)
        self.n_vocab = self.enc.n_vocab

    @property
    def exact(self):
        if self._exact is None:
            self._exact = self._make(pat_str=self.pattern, special_tokens=self.added)
        return self._exact

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, its special tokens included (``allowed_special="all"``)."""
        if not self.cuts:
            return [self.exact.encode(t, allowed_special="all") for t in texts]
        out = []
        for text, cut in zip(texts, self._cut(texts).to_list(), strict=True):
            if CUT in text:
                out.append(self.exact.encode(text, allowed_special="all"))
                continue
            if self._uncut is not None:
                cut = self._uncut.sub("", cut)
            out.append([i for i in self.enc.encode(cut, allowed_special="all") if i != self.cut_id])
        return out

    def count_pieces(self, pieces: list[str]) -> list[int]:
        """Tokens in each text, special tokens encoded as plain text (``encode_ordinary``)."""
        if not self.cuts:
            encode = self.enc.encode_ordinary
            # A plain loop: ~3x faster than tiktoken's encode_ordinary_batch thread pool here.
            return [len(encode(p)) for p in pieces]
        if any(CUT in p for p in pieces):
            exact = self.exact.encode_ordinary
            return [len(exact(p)) for p in pieces]
        cut = self._cut(pieces)
        n_cuts = cut.str.count_matches(CUT, literal=True).to_list()
        encode, with_cut = self.enc.encode, self._with_cut
        return [
            len(encode(text, allowed_special=with_cut, disallowed_special=())) - k
            for text, k in zip(cut.to_list(), n_cuts, strict=True)
        ]

    @staticmethod
    def _cut(texts: list[str]):
        """The texts with ``CUT`` before the last character of each whitespace run that a
        non-space follows (a polars Series)."""
        import polars as pl

        return pl.Series(texts, dtype=pl.String).str.replace_all(*CUT_BEFORE_LAST_SPACE)


_CHECKED: dict[Path, BpeEncoder] = {}  # disk cache entry -> the encoder checked in this process


def tiktoken_encoder(backend, name: str = "hf", tokenizer_json: str | None = None, verified: bool = False):
    """A BpeEncoder that reproduces ``backend`` (a ``tokenizers.Tokenizer``, or a function
    returning it, called only if needed), or None.

    The conversion (~0.3 s for a 50k vocabulary) is cached on disk by the tokenizer's content
    hash; a cached encoder is checked on the probe texts before it is used, unless ``verified``
    (the parent process checked the same conversion already). An encoder checked in this process
    is kept in it (``_CHECKED``, ~0.1 s to build from the disk cache): so a forked worker finds the
    one its parent built.
    """
    try:
        import tiktoken  # noqa: F401 - only whether it is installed
    except ImportError:
        return None
    get_backend = backend if callable(backend) else lambda: backend
    tokenizer_json = tokenizer_json or get_backend().to_str()
    cache = _cache_path(tokenizer_json)
    if cache in _CHECKED:
        return _CHECKED[cache]
    cached = disk_cache.load(cache)
    if cached is not None:
        enc = BpeEncoder(name, *cached)
        if verified or _reproduces(enc, get_backend()):
            _CHECKED[cache] = enc
            return enc
    try:
        spec = json.loads(tokenizer_json)
    except Exception:  # noqa: BLE001 - any tokenizer we cannot introspect uses the HF path
        return None
    model = spec.get("model", {})
    pattern = _pattern(spec.get("pre_tokenizer"))
    if model.get("type") != "BPE" or spec.get("normalizer") or pattern is None or model.get("byte_fallback"):
        return None
    decoder = _byte_decoder()
    added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    ranks = {}
    try:
        for token, idx in model["vocab"].items():
            if token in added:
                continue
            ranks[bytes(decoder[ch] for ch in token)] = idx
        enc = BpeEncoder(name, pattern, ranks, added)
    except (KeyError, ValueError) as e:
        log.debug("tiktoken conversion not possible: %s", e)
        return None
    if not _reproduces(enc, get_backend()):
        log.info("tiktoken conversion differs from the HF tokenizer on a probe; using the HF tokenizer")
        return None
    disk_cache.store(cache, (pattern, ranks, added))
    _CHECKED[cache] = enc
    return enc


def _has_space(text: str) -> bool:
    return any(ch.isspace() for ch in text)


def _reproduces(enc: BpeEncoder, backend) -> bool:
    # Whitespace runs that end at each special token (up to 8), and that start after one.
    texts = PROBE_TEXTS + [f"a  {t}\n\n{t}  b \n{t}" for t in list(enc.added)[:8]]
    plain = [t for t in texts if not any(a in t for a in enc.added)]
    ids = {t: backend.encode(t, add_special_tokens=False).ids for t in texts}  # each encoded once
    return enc.count_pieces(plain) == [len(ids[t]) for t in plain] and enc.encode(texts) == [
        ids[t] for t in texts
    ]
