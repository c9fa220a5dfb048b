"""Token counts of conversations exactly as the trainer sees them: rendered through the chat
template, tokenized in one batch call, with assistant spans (content + end-of-turn token) located
in the rendered text and mapped to tokens through the tokenizer's character offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TokenCounts:
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray  # assistant tokens: what the trainer learns from
    total_tokens: np.ndarray
    first_completion_token: np.ndarray  # index of the first assistant token (-1: none found)


class TemplateTokenCounter:
    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.eot = tokenizer.eos_token or ""
        self.template_hash = _sha(tokenizer.chat_template)

    def render(self, conversations: list[list[dict]]) -> list[str]:
        return self.tok.apply_chat_template(conversations, tokenize=False)

    def count(self, conversations: list[list[dict]]) -> TokenCounts:
        n = len(conversations)
        out = TokenCounts(*(np.zeros(n, dtype=np.int64) for _ in range(3)), np.full(n, -1, dtype=np.int64))
        if n == 0:
            return out
        texts = self.render(conversations)
        encodings = self.tok._tokenizer.encode_batch(texts, add_special_tokens=False)
        eot, eot_len = self.eot, len(self.eot)
        for i, (conv, text, enc) in enumerate(zip(conversations, texts, encodings, strict=True)):
            total = len(enc.ids)
            completion, first, cursor = 0, -1, 0
            for m in conv:
                content = m["content"]
                start = text.find(content, cursor) if content else -1
                if start < 0 and content.strip():
                    content = content.strip()
                    start = text.find(content, cursor)
                if start < 0:
                    if m["role"] == "assistant" and eot and (j := text.find(eot, cursor)) >= 0:
                        start, content = j, ""  # empty answer: only the end-of-turn token is learned
                    else:
                        continue
                end = start + len(content)
                cursor = end
                if m["role"] != "assistant":
                    continue
                if eot and text.startswith(eot, end):
                    end += eot_len
                if end <= start:
                    continue
                a, b = enc.char_to_token(start), enc.char_to_token(end - 1)
                if a is None or b is None:
                    continue
                completion += b - a + 1
                if first < 0:
                    first = a
            out.total_tokens[i] = total
            out.completion_tokens[i] = completion
            out.prompt_tokens[i] = total - completion
            out.first_completion_token[i] = first
        return out


def _sha(text: str | None) -> str:
    import hashlib

    return hashlib.sha256((text or "").encode()).hexdigest()
