"""Task type tagging: ``task_type`` from the first user turn (and the first answer where it helps:
a code fence means code, worked arithmetic means math). Tags only; it never rejects a row. It runs
first, so rejected rows carry a task type too and the report can compare before and after."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from curation.diversity.task_types import load_rules
from curation.stages.base import Stage
from curation.stages.plain_config import config_or_default
from curation.stages.turns import turns

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import TaskTypeConfig


def first_turns(batch) -> pl.DataFrame:
    """Per row: ``prompt`` (first user turn) and ``response`` (first assistant turn), "" if none."""
    t = turns(batch, roles=("user", "assistant"))
    role = pl.col("role")
    first = t.group_by("row", maintain_order=True).agg(
        prompt=pl.col("content").filter(role == "user").first(),
        response=pl.col("content").filter(role == "assistant").first(),
    )
    every = pl.DataFrame({"row": pl.int_range(0, batch.num_rows, eager=True, dtype=t["row"].dtype)})
    out = every.join(first, on="row", how="left", maintain_order="left")
    return out.select(pl.col("prompt").fill_null(""), pl.col("response").fill_null(""))


class TaskTypeStage(Stage):
    name = "task_type"

    def __init__(self, cfg: TaskTypeConfig | None = None):
        self.cfg = config_or_default(cfg, "TaskTypeConfig")
        self.rules = load_rules(self.cfg.rules)

    def score(self, batch):
        return {"task_type": self.rules.classify(first_turns(batch)).to_arrow()}

    def decide(self, batch):
        return [None] * batch.num_rows
