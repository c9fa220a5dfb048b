"""Configs pickled for workers as plain data: the same fields, no pydantic needed to load them."""

import pickle

import pytest

from curation.config import StagesConfig
from curation.stages import build_map_stages
from curation.stages.plain_config import PlainConfig, config_or_default, plain


def test_plain_copy_has_every_field_nested_models_included():
    cfg = StagesConfig.model_validate({"repetition": {"min_words": 7}, "language": {"keep": ["en", "de"]}})
    view = plain(cfg)
    assert isinstance(view, PlainConfig) and isinstance(view.repetition, PlainConfig)
    assert view.repetition.min_words == 7
    assert view.language.keep == ["en", "de"]
    assert view.repetition.max_top_ngram_char_frac == cfg.repetition.max_top_ngram_char_frac
    for name in type(cfg).model_fields:
        for field in type(getattr(cfg, name)).model_fields:
            assert getattr(getattr(view, name), field) == getattr(getattr(cfg, name), field)
    with pytest.raises(AttributeError):
        view.not_a_field  # noqa: B018
    with pytest.raises(AttributeError, match="read-only"):
        view.repetition.min_words = 3
    assert pickle.loads(pickle.dumps(view)) == view


def test_pickled_stages_carry_no_pydantic_models():
    stages = build_map_stages(StagesConfig())
    payload = pickle.dumps(stages)
    assert b"pydantic" not in payload and b"curation.config" not in payload
    again = pickle.loads(payload)
    for before, after in zip(stages, again, strict=True):
        if not hasattr(before, "cfg"):  # the content profile has no settings
            continue
        assert isinstance(after.cfg, PlainConfig)
        assert plain(before.cfg) == after.cfg
    assert stages[0].cfg.enabled  # the parent's stages keep their models


def test_config_or_default():
    cfg = StagesConfig().language
    assert config_or_default(cfg, "LanguageConfig") is cfg
    assert config_or_default(None, "LanguageConfig") == cfg


def test_other_values_pass_through_unchanged():
    from collections import namedtuple

    Pair = namedtuple("Pair", "a b")
    cfg = StagesConfig().length
    value = {"pair": Pair(1, cfg), "items": [cfg, (cfg, 2)], "f": len, "n": 3}
    out = plain(value)
    assert out["pair"] == Pair(1, cfg)  # a named tuple is left as it is
    assert isinstance(out["items"][0], PlainConfig) and isinstance(out["items"][1][0], PlainConfig)
    assert out["f"] is len and out["n"] == 3
