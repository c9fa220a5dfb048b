"""Length in tokens of the conversation rendered through the trainer's chat template.

Scores: ``prompt_tokens``, ``completion_tokens`` (assistant tokens, end-of-turn included),
``total_tokens``. Decisions: configured bounds on each, and rows whose assistant tokens would all
fall beyond the trainer's ``max_length`` (truncation would leave nothing to learn) get their own
reason, ``no_trainable_tokens_within_max_length``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from curation.stages.base import Stage
from curation.stages.plain_config import config_or_default, plain
from curation.tokens.token_counts import TemplateTokenCounter, TokenCounts, TokenizerSpec

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import LengthConfig


class LengthStage(Stage):
    name = "length"

    def __init__(self, cfg: LengthConfig | None = None, tokenizer=None):
        self.cfg = config_or_default(cfg, "LengthConfig")
        if tokenizer is None:  # the configured one, from its cached spec when it is a local folder
            from curation.tokens.token_counter_cache import load_counter

            self.counter = load_counter(self.cfg.tokenizer)
        else:
            self.counter = TemplateTokenCounter(tokenizer)

    def prepare(self, table):
        """One example conversation per distinct role sequence -> the counter's checked skeletons."""
        import pyarrow.compute as pc

        messages = table["messages"].combine_chunks()
        roles = pc.struct_field(pc.list_flatten(messages), "role").to_pylist() if table.num_rows else []
        lengths = pc.list_value_length(messages).to_pylist()
        examples, pos = {}, 0
        for i, n in enumerate(lengths):
            key = tuple(roles[pos : pos + n])
            pos += n
            if key not in examples:
                examples[key] = table["messages"][i].as_py()
        self.counter.prepare(examples)

    def shared_state(self):
        spec = self.counter.spec
        return {"skeletons": spec.skeletons, "checked": spec.checked} if self.counter.verbatim else None

    def update_state(self, state) -> None:
        self.counter.spec.skeletons.update(state["skeletons"])
        self.counter.spec.checked.update(state["checked"])

    # Pickled as plain data (config + tokenizer spec): a worker process rebuilds the counter
    # without loading the tokenizer through transformers again.
    def __getstate__(self):
        return {"cfg": plain(self.cfg), "spec": self.counter.spec}

    def __setstate__(self, state):
        self.cfg = state["cfg"]
        self.counter = TemplateTokenCounter(spec=state["spec"])

    @property
    def spec(self) -> TokenizerSpec:
        return self.counter.spec

    def score(self, batch):
        messages = batch["messages"]
        errors = [None] * batch.num_rows
        try:
            counts = self.counter.count_arrow(messages)
        except Exception as e:
            if not _refused_by_template(e):
                raise
            # A template that refuses a row (HF templates' raise_exception: "tool turns are not
            # supported"): that row is rejected with the template's message, the rest are counted.
            counts = TokenCounts(
                *(np.zeros(batch.num_rows, dtype=np.int64) for _ in range(3)), np.full(batch.num_rows, -1)
            )
            for i in range(batch.num_rows):
                try:
                    one = self.counter.count_arrow(messages.slice(i, 1))
                except Exception as e:
                    if not _refused_by_template(e):
                        raise
                    errors[i] = str(e).splitlines()[0] if str(e) else type(e).__name__
                    continue
                for name in ("prompt_tokens", "completion_tokens", "total_tokens", "first_completion_token"):
                    getattr(counts, name)[i] = getattr(one, name)[0]
        return {
            "prompt_tokens": counts.prompt_tokens,
            "completion_tokens": counts.completion_tokens,
            "total_tokens": counts.total_tokens,
            "first_completion_token": counts.first_completion_token,
            "template_error": pa.array(errors, pa.string()),
        }

    def decide(self, batch):
        c = self.cfg
        p, a, t, first = (
            batch[k].to_numpy()
            for k in ("prompt_tokens", "completion_tokens", "total_tokens", "first_completion_token")
        )
        reasons = np.full(batch.num_rows, None, dtype=object)
        # Assigned in reverse priority: the most specific reason wins.
        checks = [
            (c.max_total_tokens is not None and t > (c.max_total_tokens or 0), "total_tokens>max"),
            (
                c.max_completion_tokens is not None and a > (c.max_completion_tokens or 0),
                "completion_tokens>max",
            ),
            (c.max_prompt_tokens is not None and p > (c.max_prompt_tokens or 0), "prompt_tokens>max"),
            (a < c.min_completion_tokens, "completion_tokens<min"),
            (p < c.min_prompt_tokens, "prompt_tokens<min"),
            ((first < 0) | (first >= c.max_length), "no_trainable_tokens_within_max_length"),
        ]
        for mask, reason in checks:
            if mask is not False:
                reasons[np.asarray(mask, dtype=bool)] = reason
        if "template_error" in batch.column_names:
            reasons[batch["template_error"].is_valid().to_numpy(zero_copy_only=False)] = "chat_template_error"
        return reasons


def _refused_by_template(error: Exception) -> bool:
    """A jinja2 TemplateError (the template's raise_exception), told without importing jinja2 into
    workers that never meet one."""
    return any(
        c.__module__.startswith("jinja2") and c.__name__ == "TemplateError" for c in type(error).__mro__
    )
