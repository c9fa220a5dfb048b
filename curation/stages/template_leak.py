"""Chat-template leaks: role markup or an invented next turn inside an assistant answer.

Answers scraped from a model's raw output often carry the template the model was trained with
(``### Human:``, ``[|Human|]``, ``<|im_start|>``, ``</s>``) or go on writing the user's next
turn; 46 of guanaco-7b's 805 AlpacaEval answers in ../shared/data do. Trained on, such a row
teaches the model to talk to itself. Two kinds:

* ``markup``: a template token or role header of a known chat format, anywhere in the answer;
* ``fabricated_turn``: a line that opens a new turn with a speaker label ("Human:", "User:",
  "Assistant:", "A human asked:") after the answer has begun, or as its first line.

A marker the prompt itself contains (a user asking about chat templates, or a transcript the
user pasted) is not a leak, and speaker lines are expected when the user asks for a dialogue,
a script or an interview.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.stages.base import Stage
from curation.stages.plain_config import config_or_default
from curation.stages.turns import per_row, turns

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import TemplateLeakConfig

# Template tokens and role headers of the chat formats in common use: ChatML and its kin
# (<|im_start|>, <|user|>, <|endoftext|>), Llama 2 and 3 ([INST], <<SYS>>, <|eot_id|>), Alpaca and
# Vicuna-style headers (### Instruction:, ### Human:), Baize ([|Human|], [|AI|]), sentence
# markers (</s>), Open-Assistant (<|prompter|>).
MARKUP = (
    r"<\|(?:im_start|im_end|endoftext|end_of_text|eot_id|start_header_id|end_header_id|user|assistant|"
    r"system|prompter|human|bot|end)\|>|</s>|\[/?INST\]|<</?SYS>>|\[\|(?:Human|AI|User|Assistant)\|\]|"
    r"(?m)^\s*###\s*(?:Human|Instruction|Response|Assistant|Input|User|System|Prompt)\s*:?|"
    r"###\s*(?:Human|Instruction|Response|Assistant|User)\s*:"
)
SPEAKER_LINE = (
    r"(?m)^\s*(?:Human|HUMAN|User|USER|Assistant|ASSISTANT|Prompter)\s*:|"
    r"(?m)^\s*(?:A|The) (?:human|user) (?:asked|asks|said|says|answered|replied|wrote)\s*:"
)
# A literal every MARKUP or SPEAKER_LINE match contains (a multi-pattern search picks the few
# answers the patterns need to look at).
LITERALS = [
    "<|", "</s>", "INST]", "<<", "[|", "###",
    *(f"{who}{sep}" for who in ("Human", "HUMAN", "User", "USER", "Assistant", "ASSISTANT", "Prompter") for sep in (":", " :")),
    *(f"{who} {verb}" for who in ("human", "user") for verb in ("asked", "asks", "said", "says", "answered", "replied", "wrote")),
]  # fmt: skip
DIALOGUE_REQUEST = r"(?i)dialog|conversation|chat|script|transcript|interview|role[- ]?play|screenplay|scene"


class TemplateLeakStage(Stage):
    name = "template_leak"

    def __init__(self, cfg: TemplateLeakConfig | None = None):
        self.cfg = config_or_default(cfg, "TemplateLeakConfig")

    def score(self, batch):
        t = turns(batch, roles=("user", "assistant"))
        # Only answers holding a marker's literal go through the patterns (a multi-pattern search:
        # a few answers in a thousand), and only their prompts are gathered.
        a = t.filter((pl.col("role") == "assistant") & pl.col("content").str.contains_any(LITERALS))
        prompt = (
            t.filter((pl.col("role") == "user") & pl.col("row").is_in(a["row"].implode()))
            .group_by("row")
            .agg(prompt=pl.col("content").str.join("\n"))
        )
        a = a.join(prompt, on="row", how="left").with_columns(pl.col("prompt").fill_null(""))
        kind = (
            pl.when(pl.col("content").str.contains(MARKUP) & ~pl.col("prompt").str.contains(MARKUP))
            .then(pl.lit("markup"))
            .when(
                pl.col("content").str.contains(SPEAKER_LINE)
                & ~pl.col("prompt").str.contains(SPEAKER_LINE)
                & ~pl.col("prompt").str.contains(DIALOGUE_REQUEST)
            )
            .then(pl.lit("fabricated_turn"))
            .otherwise(None)
        )
        found = a.with_columns(kind=kind).filter(pl.col("kind").is_not_null())
        first = found.group_by("row", maintain_order=True).agg(pl.col("kind").first())
        kinds = per_row(first, "kind", batch.num_rows, None, object)
        return {"template_leak": kinds.tolist()}

    def decide(self, batch):
        if not self.cfg.reject:
            return [None] * batch.num_rows
        kinds = np.asarray(batch["template_leak"].to_pylist(), dtype=object)
        return np.where(kinds != None, "template_leak:" + kinds.astype(str), None)  # noqa: E711
