"""Task type of each conversation from ordered word-boundary rules in an editable YAML file.

The rules are compiled into one polars ``when/then`` chain over the first user turn and the first
assistant turn: vectorized, and the first matching rule wins (the file's order is the priority).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from curation.errors import ConfigError
from curation.stages.word_boundaries import ascii_words, select_by_ascii

DEFAULT_RULES = "task_types.yaml"
PROMPT_CHARS = 1000  # the task is stated at the start of the prompt
RESPONSE_CHARS = 2000


@dataclass(frozen=True)
class TaskRule:
    type: str
    prompt: tuple[str, ...] = ()
    response: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskRules:
    types: tuple[str, ...]
    rules: tuple[TaskRule, ...]
    source: str

    def classify(self, df: pl.DataFrame, prompt: str = "prompt", response: str = "response") -> pl.Series:
        """The task type of each row of ``df``, from its two text columns.

        Matching is case-insensitive: the texts are lower-cased once (cheaper than ``(?i)`` in
        every pattern) and only their start is searched, where the task is stated.
        """
        low = df.select(
            p=pl.col(prompt).str.slice(0, PROMPT_CHARS).str.to_lowercase(),
            r=pl.col(response).str.slice(0, RESPONSE_CHARS).str.to_lowercase(),
        )

        def conds(pattern):
            out = []
            for i, rule in enumerate(self.rules):
                parts = [pl.col("p").str.contains(pattern(_union(rule.prompt)))] if rule.prompt else []
                if rule.response:
                    parts.append(pl.col("r").str.contains(pattern(_union(rule.response))))
                out.append(pl.any_horizontal(parts).fill_null(False).alias(f"c{i}"))
            return out

        labels = np.array([r.type for r in self.rules] + ["other"], dtype=object)
        if not self.rules or low.height == 0:
            return pl.Series("task_type", ["other"] * low.height, dtype=pl.String)
        # Rules evaluated in parallel, one column each.
        hits = select_by_ascii(low, ascii_words(pl.col("p"), pl.col("r")), conds).to_numpy()
        # The first matching rule wins; no match -> "other".
        first = np.where(hits.any(axis=1), hits.argmax(axis=1), len(self.rules))
        return pl.Series("task_type", labels[first].tolist(), dtype=pl.String)


def _union(patterns: tuple[str, ...]) -> str:
    return "|".join(f"(?:{p})" for p in patterns)


def load_rules(path: str | Path | None = None) -> TaskRules:
    """The rules in ``path`` (default: the bundled file); errors name the file and the rule."""
    if path is None:
        text = resources.files("curation.diversity").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
        where = f"curation/diversity/{DEFAULT_RULES}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"task-type rules {path}: {e.strerror}") from e
        where = str(path)
    import yaml  # here: workers, which only classify, never import it

    try:
        data = (
            yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        )  # libyaml: ~10x faster
    except yaml.YAMLError as e:
        raise ConfigError(f"task-type rules {where}: not valid YAML: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError(f"task-type rules {where}: expected a mapping with a 'rules' list")
    unknown = set(data) - {"types", "rules"}
    if unknown:
        raise ConfigError(f"task-type rules {where}: unknown key(s) {sorted(unknown)}")
    types = tuple(data.get("types") or ())
    rules = []
    for i, raw in enumerate(data["rules"]):
        label = f"task-type rules {where}: rules[{i}]"
        if not isinstance(raw, dict) or "type" not in raw:
            raise ConfigError(f"{label}: each rule needs a 'type'")
        bad = set(raw) - {"type", "prompt", "response"}
        if bad:
            raise ConfigError(f"{label}: unknown key(s) {sorted(bad)}")
        if types and raw["type"] not in types:
            raise ConfigError(f"{label}: type {raw['type']!r} is not in 'types'")
        rule = TaskRule(raw["type"], tuple(raw.get("prompt") or ()), tuple(raw.get("response") or ()))
        if not rule.prompt and not rule.response:
            raise ConfigError(f"{label}: a rule needs 'prompt' or 'response' patterns")
        for field in ("prompt", "response"):
            for j, pattern in enumerate(getattr(rule, field)):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ConfigError(f"{label}.{field}[{j}]: bad pattern {pattern!r}: {e}") from e
        rules.append(rule)
    if not types:
        types = tuple(dict.fromkeys([r.type for r in rules] + ["other"]))
    elif "other" not in types:
        types = (*types, "other")
    return TaskRules(types, tuple(rules), where)
