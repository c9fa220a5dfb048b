"""Quality stages. Map stages run per batch (pure); the refusal cap needs a whole source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from curation.stages.base import Stage, StageCounts
from curation.stages.content import ContentProfileStage
from curation.stages.empty import NearEmptyStage
from curation.stages.language import LanguageStage
from curation.stages.length import LengthStage
from curation.stages.refusal import RefusalStage
from curation.stages.refusal_cap import RefusalCapStage
from curation.stages.repetition import RepetitionStage
from curation.stages.task_type import TaskTypeStage
from curation.stages.template_leak import TemplateLeakStage
from curation.stages.truncation import TruncationStage

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import StagesConfig

__all__ = [
    "Stage",
    "StageCounts",
    "ContentProfileStage",
    "TemplateLeakStage",
    "build_map_stages",
    "NearEmptyStage",
    "TruncationStage",
    "RepetitionStage",
    "RefusalStage",
    "RefusalCapStage",
    "LanguageStage",
    "LengthStage",
    "TaskTypeStage",
]


def build_map_stages(cfg: StagesConfig, tokenizer=None) -> list[Stage]:
    """The enabled map stages, cheapest first, so that tokenization only sees surviving rows."""
    stages: list[Stage] = []
    if cfg.task_type.enabled:  # tags only, first: every row, kept or rejected, gets a task type
        stages.append(TaskTypeStage(cfg.task_type))
    stages.append(ContentProfileStage())  # tags only: what each answer is, for the filters below
    if cfg.empty.enabled:
        stages.append(NearEmptyStage(cfg.empty))
    # Loops and leaks before truncation: a model that loops or talks to itself runs to the token
    # limit, and its row is removed for the cause, not for the cut it ends in.
    if cfg.repetition.enabled:
        stages.append(RepetitionStage(cfg.repetition))
    if cfg.template_leak.enabled:
        stages.append(TemplateLeakStage(cfg.template_leak))
    if cfg.truncation.enabled:
        stages.append(TruncationStage(cfg.truncation))
    if cfg.refusal.enabled:
        stages.append(RefusalStage(cfg.refusal))
    if cfg.language.enabled:
        stages.append(LanguageStage(cfg.language))
    if cfg.length.enabled:
        stages.append(LengthStage(cfg.length, tokenizer=tokenizer))
    return stages
