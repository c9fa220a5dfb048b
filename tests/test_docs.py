"""The documentation that is generated from the code is current."""

from __future__ import annotations


def test_config_reference_is_current():
    from pipelines import config_docs

    assert config_docs.main(["--check"]) == 0, "run: python -m pipelines.config_docs"


def test_every_config_key_is_in_the_reference():
    from curation.config import CurateConfig, StagesConfig
    from pipelines.config_docs import render

    text = render()
    for name in CurateConfig.model_fields:
        if name != "base_dir":
            assert f"`{name}`" in text or f"`{name}[]`" in text or f"### `{name}`" in text
    for stage, field in StagesConfig.model_fields.items():
        for key in field.annotation.model_fields:
            assert f"`stages.{stage}.{key}`" in text or f"### `stages.{stage}.{key}" in text, (stage, key)
