"""Token counts of conversations exactly as the trainer sees them.

Each conversation is rendered through the tokenizer's chat template; the assistant spans (content
plus the end-of-turn token) are located in the rendered text; prompt and completion tokens are
counted from there.

Two ways to count, with identical results:

* **exact**: tokenize the rendered texts in one batch call and map the assistant spans to tokens
  through the character offsets. Works for every fast tokenizer.
* **piecewise** (used when it is provably the same): added/special tokens split the text before
  pre-tokenization, so the rendered text is cut at special tokens and at assistant-content starts
  that are pre-token boundaries (after a newline, content not starting with whitespace). Identical
  pieces (the default system prompt of every row, the role headers) are tokenized once, with
  tiktoken when it reproduces the tokenizer (fast_bpe). Rows whose boundaries are not provably
  safe, and tokenizers whose pre-tokenizer is not a byte-level regex, use the exact way. At start
  the two ways are compared on probe conversations, and piecewise is only used if they agree.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curation.tokens.fast_bpe import tiktoken_encoder

log = logging.getLogger(__name__)

PROBE_CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "  spaced  "},
        {"role": "assistant", "content": "  leading and trailing  "},
        {"role": "user", "content": "\n\nnewlines first"},
        {"role": "assistant", "content": "Sure.\n\n```python\nprint('x')\n```"},
    ],
    [{"role": "user", "content": "¿Qué? 東京"}, {"role": "assistant", "content": "París. 🙂 1,234.5"}],
    [{"role": "user", "content": "empty answer"}, {"role": "assistant", "content": ""}],
]


def token_byte_lengths(enc) -> np.ndarray:
    """Bytes in each token of a tiktoken Encoding, by token id: from its rank tables (~5 ms for
    a 50k vocabulary; 5x faster than decoding each token), else token by token."""
    ranks, special = getattr(enc, "_mergeable_ranks", None), getattr(enc, "_special_tokens", None)
    if not isinstance(ranks, dict) or not isinstance(special, dict):
        return np.array([len(enc.decode_single_token_bytes(t)) for t in range(enc.n_vocab)], dtype=np.int64)
    lengths = np.full(enc.n_vocab, -1, dtype=np.int64)
    lengths[np.fromiter(ranks.values(), np.int64, len(ranks))] = np.fromiter(
        map(len, ranks), np.int64, len(ranks)
    )
    for token, i in special.items():
        lengths[i] = len(token.encode("utf-8"))
    return lengths


@dataclass
class TokenizerSpec:
    """Everything the counter needs, as plain data: picklable, and usable without transformers."""

    name: str
    tokenizer_json: str
    chat_template: str
    special_tokens_map: dict
    eos_token: str
    added_tokens: list[str]
    probe_renders: list[str] = field(default_factory=list)  # apply_chat_template on PROBE_CONVERSATIONS
    # Filled in by the parent process, so that workers need no template engine and no re-checks:
    piecewise_ok: bool | None = None
    skeletons: dict = field(default_factory=dict)  # role sequence -> skeleton literals (or None)
    checked: set = field(default_factory=set)  # role sequences whose skeleton fill matched a real render
    tiktoken_verified: bool = False  # the cached tiktoken conversion reproduced the tokenizer
    exact_with_tiktoken: bool | None = None  # tiktoken's exact counts matched the tokenizer's on probes
    verbatim: bool | None = None  # the template prints message contents as they are (template_analysis)

    @classmethod
    def from_hf(cls, tok) -> TokenizerSpec:
        return cls(
            name=str(getattr(tok, "name_for_manifest", tok.name_or_path)),
            tokenizer_json=tok._tokenizer.to_str(),
            chat_template=tok.chat_template,
            special_tokens_map=dict(tok.special_tokens_map),
            eos_token=tok.eos_token or "",
            added_tokens=sorted(
                {t.content for t in tok.added_tokens_decoder.values()}, key=len, reverse=True
            ),
            probe_renders=[_render_or_none(tok, c) for c in PROBE_CONVERSATIONS],
        )

    def hf_tokenizer(self):
        """A transformers tokenizer rebuilt from the spec (only needed when the fast render fails)."""
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(self.tokenizer_json), **self.special_tokens_map
        )
        tok.chat_template = self.chat_template
        return tok


def _render_or_none(tok, conversation: list[dict]) -> str | None:
    """The probe's render, or None where the template refuses it (raise_exception on a role)."""
    from jinja2 import TemplateError

    try:
        return tok.apply_chat_template(conversation, tokenize=False)
    except TemplateError:
        return None


@dataclass
class TokenCounts:
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray  # assistant tokens: what the trainer learns from
    total_tokens: np.ndarray
    first_completion_token: np.ndarray  # index of the first assistant token (-1: none)


class TemplateTokenCounter:
    """Counts tokens for one tokenizer + chat template. Build it from a transformers tokenizer or
    from a TokenizerSpec (what worker processes do: no transformers model code is imported)."""

    def __init__(self, tokenizer=None, piecewise: bool = True, spec: TokenizerSpec | None = None):
        if spec is None:
            spec = TokenizerSpec.from_hf(tokenizer)
        self.spec = spec
        self._hf = tokenizer
        self._backend_tok = tokenizer._tokenizer if tokenizer is not None else None
        self.eot = spec.eos_token
        self.template_hash = hashlib.sha256((spec.chat_template or "").encode()).hexdigest()
        added = spec.added_tokens
        self.added_re = re.compile("|".join(re.escape(t) for t in added)) if added else None
        self.encoder = (
            tiktoken_encoder(
                lambda: self.backend_tok, spec.name, spec.tokenizer_json, verified=spec.tiktoken_verified
            )
            if piecewise
            else None
        )
        spec.tiktoken_verified = self.encoder is not None
        self._compiled = None  # the Jinja template, compiled on first use
        self._skeletons = spec.skeletons
        self._checked = spec.checked
        self.layouts: dict = {}  # role sequence -> columnar_counts layout (None: per-row path)
        if spec.verbatim is None:  # parsed once, in the parent: workers never import jinja2
            from curation.tokens.template_analysis import content_is_verbatim

            spec.verbatim = content_is_verbatim(spec.chat_template or "")
        self.verbatim = spec.verbatim
        if not piecewise:
            self.piecewise = False
        else:
            if spec.piecewise_ok is None:
                spec.piecewise_ok = self.added_re is not None and self._piecewise_agrees()
            self.piecewise = spec.piecewise_ok
        self._token_bytes = None  # byte length of every token id (tiktoken exact counting)
        if self.encoder is not None and spec.exact_with_tiktoken is None:
            spec.exact_with_tiktoken = self._tiktoken_exact_agrees()
        self.exact_with_tiktoken = self.encoder is not None and bool(spec.exact_with_tiktoken)
        self.backend = ("tiktoken" if self.encoder is not None else "tokenizers") + (
            " piecewise" if self.piecewise else " exact"
        )
        log.debug("token counting: %s", self.backend)

    def prepare(self, examples: dict[tuple[str, ...], list[dict]]) -> None:
        """Compute and check the skeleton of each role sequence (one example conversation each),
        so that worker processes built from ``self.spec`` render without a template engine."""
        if not self.verbatim:
            return
        for roles, conv in examples.items():
            skeleton = self._skeleton_for(roles)
            if skeleton is not None and roles not in self._checked:
                if self.render([conv])[0] == self._fill(skeleton, conv)[0]:
                    self._checked.add(roles)
                else:
                    self.verbatim = False
                    return

    @property
    def _template(self):
        if self._compiled is None:
            self._compiled = self._compiled_template() or False
        return self._compiled or None

    @property
    def backend_tok(self):
        """The Rust tokenizer, built from the spec on first use (a worker that counts with a
        verified tiktoken conversion never needs it: ~0.2 s saved at every worker's start)."""
        if self._backend_tok is None:
            from tokenizers import Tokenizer

            self._backend_tok = Tokenizer.from_str(self.spec.tokenizer_json)
        return self._backend_tok

    @property
    def hf(self):
        if self._hf is None:
            self._hf = self.spec.hf_tokenizer()
        return self._hf

    # -- public -----------------------------------------------------------------------------

    def render(self, conversations: list[list[dict]]) -> list[str]:
        """The rendered text of each conversation, as ``apply_chat_template(tokenize=False)`` gives it.

        The compiled template is called directly (3x faster than going through
        ``apply_chat_template``); it is used only if it reproduced apply_chat_template on probes.
        """
        if self._template is None:
            return self.hf.apply_chat_template(conversations, tokenize=False)
        render, kwargs = self._template
        return [render(messages=conv, add_generation_prompt=False, **kwargs) for conv in conversations]

    def count(self, conversations: list[list[dict]]) -> TokenCounts:
        n = len(conversations)
        out = TokenCounts(*(np.zeros(n, dtype=np.int64) for _ in range(3)), np.full(n, -1, dtype=np.int64))
        if n == 0:
            return out
        rendered = self.render_with_spans(conversations)
        exact_rows = list(range(n))
        if self.piecewise:
            exact_rows = self._count_piecewise(rendered, out)
        if exact_rows:
            count_exact = self._count_exact_tiktoken if self.exact_with_tiktoken else self._count_exact
            count_exact([rendered[i] for i in exact_rows], out, exact_rows)
        return out

    def count_arrow(self, messages) -> TokenCounts:
        """``count`` for an Arrow column of conversations: on columns (columnar_counts) where the
        template allows, per row for the rest."""
        from curation.tokens.columnar_counts import count_columnar

        n = len(messages)
        out = TokenCounts(*(np.zeros(n, dtype=np.int64) for _ in range(3)), np.full(n, -1, dtype=np.int64))
        if n == 0:
            return out
        rest = count_columnar(self, messages, out) if self.piecewise and self.verbatim else np.arange(n)
        if len(rest):
            counted = self.count(messages.take(pa.array(rest)).to_pylist())
            for name in ("prompt_tokens", "completion_tokens", "total_tokens", "first_completion_token"):
                getattr(out, name)[rest] = getattr(counted, name)
        return out

    def render_with_spans(self, conversations: list[list[dict]]) -> list[tuple[str, list | None]]:
        """Rendered text and assistant spans of each conversation.

        For a template that prints contents verbatim (template_analysis), the text is the role
        sequence's skeleton filled with the contents: no template engine per row. The first row
        of every role sequence is checked against a real render.
        """
        out: list[tuple[str, list | None]] = []
        pending: list[int] = []
        for conv in conversations:
            if self.verbatim:
                roles = tuple(m["role"] for m in conv)
                skeleton = self._skeleton_for(roles)
                if skeleton is not None:
                    text, spans = self._fill(skeleton, conv)
                    if roles not in self._checked:
                        if self.render([conv])[0] != text:
                            self.verbatim = False  # the analysis was wrong for this template: stop
                            pending.append(len(out))
                            out.append(("", None))
                            continue
                        self._checked.add(roles)
                    out.append((text, spans))
                    continue
            pending.append(len(out))
            out.append(("", None))
        if pending:
            texts = self.render([conversations[i] for i in pending])
            for i, text in zip(pending, texts, strict=True):
                out[i] = (text, self._assistant_spans(conversations[i], text))
        return out

    def _compiled_template(self):
        try:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            compiled = _compile_jinja_template(self.spec.chat_template)
            kwargs = {"tools": None, "documents": None, **self.spec.special_tokens_map}
            for conv, want in zip(PROBE_CONVERSATIONS, self.spec.probe_renders, strict=True):
                if want is None:  # the template refuses this probe (a system turn, say)
                    continue
                if compiled.render(messages=conv, add_generation_prompt=False, **kwargs) != want:
                    return None
            return compiled.render, kwargs
        except Exception:  # noqa: BLE001 - any difference in transformers internals: use the public API
            return None

    # -- assistant spans --------------------------------------------------------------------

    def _assistant_spans(self, conv: list[dict], text: str) -> list[tuple[int, int, int]] | None:
        """(content start, content end, learned end incl. end-of-turn) per assistant turn, or None.

        The template is rendered once per sequence of roles with sentinel contents; that skeleton
        places every content exactly. A row whose text is not the skeleton filled with its contents
        (a template that edits or branches on content) falls back to searching the contents in order.
        """
        skeleton = self._skeleton_for(tuple(m["role"] for m in conv))
        if skeleton is not None:
            filled, spans = self._fill(skeleton, conv)
            if filled == text:
                return spans
        return self._search_spans(conv, text)

    def _skeleton_for(self, roles: tuple[str, ...]) -> list[str] | None:
        if roles not in self._skeletons:
            self._skeletons[roles] = self._skeleton(roles)
        return self._skeletons[roles]

    def _fill(self, skeleton: list[str], conv: list[dict]) -> tuple[str, list[tuple[int, int, int]]]:
        parts, spans, pos = [], [], 0
        for literal, m in zip(skeleton, conv, strict=False):
            content = m["content"]
            parts.append(literal)
            parts.append(content)
            pos += len(literal)
            if m["role"] == "assistant":
                spans.append((pos, pos + len(content)))
            pos += len(content)
        parts.append(skeleton[-1])
        text = "".join(parts)
        return text, [(a, b, self._learned_end(text, b)) for a, b in spans]

    def _learned_end(self, text: str, end: int) -> int:
        return end + len(self.eot) if self.eot and text.startswith(self.eot, end) else end

    def _skeleton(self, roles: tuple[str, ...]) -> list[str] | None:
        probe = [{"role": r, "content": f"\x00{i}\x00"} for i, r in enumerate(roles)]
        try:
            rendered = self.render([probe])[0]
        except Exception:  # noqa: BLE001 - a template that rejects this role order
            return None
        parts = re.split(r"\x00(\d+)\x00", rendered)
        if [int(x) for x in parts[1::2]] != list(range(len(roles))):
            return None  # the template drops, repeats or reorders contents
        return parts[0::2]

    def _search_spans(self, conv: list[dict], text: str) -> list[tuple[int, int, int]] | None:
        """Fallback: find each content in order, never inside an added token."""
        blocked = [(m.start(), m.end()) for m in self.added_re.finditer(text)] if self.added_re else []
        spans, cursor = [], 0
        for m in conv:
            content = m["content"]
            start = self._find(text, content, cursor, blocked) if content else -1
            if start < 0 and content.strip():
                content = content.strip()
                start = self._find(text, content, cursor, blocked)
            if start < 0:
                if m["role"] != "assistant":
                    continue
                if not self.eot or (start := text.find(self.eot, cursor)) < 0:
                    return None
                content = ""  # empty answer: only the end-of-turn token is learned
            end = start + len(content)
            cursor = end
            if m["role"] == "assistant":
                spans.append((start, end, self._learned_end(text, end)))
        return spans

    @staticmethod
    def _find(text: str, content: str, cursor: int, blocked: list[tuple[int, int]]) -> int:
        while (i := text.find(content, cursor)) >= 0:
            j = i + len(content)
            hit = next(((s, e) for s, e in blocked if s < j and i < e), None)
            if hit is None:
                return i
            cursor = hit[1]
        return -1

    # -- exact: offsets ---------------------------------------------------------------------

    def _count_exact(self, rendered: list[tuple[str, list | None]], out: TokenCounts, rows) -> None:
        encodings = self.backend_tok.encode_batch([text for text, _ in rendered], add_special_tokens=False)
        for row, (_, spans), enc in zip(rows, rendered, encodings, strict=True):
            total = len(enc.ids)
            completion, first = 0, -1
            for start, _, end in spans or []:
                if end <= start:
                    continue
                a, b = enc.char_to_token(start), enc.char_to_token(end - 1)
                if a is None or b is None:
                    continue
                completion += b - a + 1
                if first < 0:
                    first = a
            out.total_tokens[row] = total
            out.completion_tokens[row] = completion
            out.prompt_tokens[row] = total - completion
            out.first_completion_token[row] = first

    def _count_exact_tiktoken(self, rendered: list[tuple[str, list | None]], out: TokenCounts, rows) -> None:
        """``_count_exact`` with the tiktoken conversion: no Rust tokenizer to build (~0.2 s) in a
        process that never needed it. A character belongs to the token holding its first byte
        (the first token that holds any of it, as ``char_to_token`` answers)."""
        if self._token_bytes is None:
            self._token_bytes = token_byte_lengths(self.encoder.enc)
        all_ids = self.encoder.encode([text for text, _ in rendered])
        for row, (text, spans), ids in zip(rows, rendered, all_ids, strict=True):
            ids = np.asarray(ids, dtype=np.int64)
            starts = np.cumsum(self._token_bytes[ids]) - self._token_bytes[ids]  # first byte of each token
            completion, first = 0, -1
            for start, _, end in spans or []:
                if end <= start:
                    continue
                a, b = (
                    int(np.searchsorted(starts, len(text[:c].encode("utf-8", "surrogatepass")), "right")) - 1
                    for c in (start, end - 1)
                )
                completion += b - a + 1
                if first < 0:
                    first = a
            out.total_tokens[row] = len(ids)
            out.completion_tokens[row] = completion
            out.prompt_tokens[row] = len(ids) - completion
            out.first_completion_token[row] = first

    def _tiktoken_exact_agrees(self) -> bool:
        try:
            texts = self.render(PROBE_CONVERSATIONS)
        except Exception:  # noqa: BLE001 - a template that cannot render the probes
            return False
        rendered = [(t, self._assistant_spans(c, t)) for c, t in zip(PROBE_CONVERSATIONS, texts, strict=True)]
        n = len(rendered)
        a, b = (
            TokenCounts(*(np.zeros(n, dtype=np.int64) for _ in range(3)), np.full(n, -1, dtype=np.int64))
            for _ in range(2)
        )
        self._count_exact_tiktoken(rendered, a, list(range(n)))
        self._count_exact(rendered, b, list(range(n)))
        return all(
            np.array_equal(getattr(a, f), getattr(b, f))
            for f in ("total_tokens", "completion_tokens", "first_completion_token")
        )

    # -- piecewise: special-token split + shared pieces ---------------------------------------

    def _plan(self, text: str, spans: list | None) -> list[tuple[str | None, bool]] | None:
        """Pieces (text, or None for one special token) with their completion flag; None if unsafe.

        Special tokens cut the text; so does the start of each assistant content, which must be a
        pre-token boundary (right after a special token, or after a newline with content that does
        not start with whitespace) and must end at a special token (the end-of-turn).
        """
        if spans is None:
            return None
        pieces: list[tuple[str | None, bool]] = []
        k, n_spans = 0, len(spans)
        pos = 0
        learned_until = -1  # end of the assistant span being walked (content + end-of-turn)
        for m in self.added_re.finditer(text):
            s, e = m.start(), m.end()
            if s > pos:  # text between two special tokens: maybe split at an assistant content start
                while k < n_spans and spans[k][0] < s and spans[k][1] <= s:
                    start, end, learned_end = spans[k]
                    k += 1
                    if end == start:  # empty answer: only its end-of-turn token is learned
                        learned_until = learned_end
                        continue
                    if start < pos or end != s:
                        return None
                    if start > pos:
                        if text[start - 1] != "\n" or text[start].isspace():
                            return None
                        pieces.append((text[pos:start], False))
                    pieces.append((text[start:end], True))
                    learned_until = learned_end
                    pos = end
                if s > pos:
                    pieces.append((text[pos:s], pos < learned_until))
            if k < n_spans and spans[k][0] == s and spans[k][1] == s:  # empty answer at a special token
                learned_until = spans[k][2]
                k += 1
            pieces.append((None, s < learned_until))
            pos = e
        if k < n_spans:
            if any(sp[1] > sp[0] for sp in spans[k:]):
                return None  # an assistant content not closed by a special token
        if pos < len(text):
            pieces.append((text[pos:], False))
        return pieces

    def _count_piecewise(self, rendered: list[tuple[str, list | None]], out: TokenCounts) -> list[int]:
        plans, fallback = [], []
        for i, (text, spans) in enumerate(rendered):
            plan = self._plan(text, spans)
            if plan is None:
                fallback.append(i)
            plans.append(plan)
        index: dict[str, int] = {}
        for plan in plans:
            for piece, _ in plan or ():
                if piece is not None and piece not in index:
                    index[piece] = len(index)
        lengths = self._piece_lengths(list(index))
        for i, plan in enumerate(plans):
            if plan is None:
                continue
            total = completion = 0
            first = -1
            for piece, learned in plan:
                k = 1 if piece is None else lengths[index[piece]]
                if learned:
                    if first < 0 and k:
                        first = total
                    completion += k
                total += k
            out.total_tokens[i] = total
            out.completion_tokens[i] = completion
            out.prompt_tokens[i] = total - completion
            out.first_completion_token[i] = first
        return fallback

    def _piece_lengths(self, pieces: list[str]) -> list[int]:
        if not pieces:
            return []
        if self.encoder is not None:
            return self.encoder.count_pieces(pieces)
        return [len(e.ids) for e in self.backend_tok.encode_batch_fast(pieces, add_special_tokens=False)]

    def _piecewise_agrees(self) -> bool:
        try:
            texts = self.render(PROBE_CONVERSATIONS)
        except Exception:  # noqa: BLE001 - a template that cannot render the probes: use exact
            return False
        n = len(PROBE_CONVERSATIONS)
        a = TokenCounts(*(np.zeros(n, dtype=np.int64) for _ in range(3)), np.full(n, -1, dtype=np.int64))
        b = TokenCounts(*(np.zeros(n, dtype=np.int64) for _ in range(3)), np.full(n, -1, dtype=np.int64))
        rendered = [(t, self._assistant_spans(c, t)) for c, t in zip(PROBE_CONVERSATIONS, texts, strict=True)]
        fallback = self._count_piecewise(rendered, a)
        self._count_exact(rendered, b, list(range(n)))
        same = all(
            np.array_equal(np.delete(x, fallback), np.delete(y, fallback))
            for x, y in zip(
                (a.total_tokens, a.completion_tokens, a.first_completion_token),
                (b.total_tokens, b.completion_tokens, b.first_completion_token),
                strict=True,
            )
        )
        if not same:
            log.info(
                "piecewise token counting disagrees with the exact count for this tokenizer; using exact"
            )
        return same
