"""One polars thread per process in a multi-process run, asked for before polars is imported."""

import json

from tests.helpers import run_python

SET_UP = """
import json, os, sys
os.environ.pop("POLARS_MAX_THREADS", None)
from curation.run.polars_threads import one_polars_thread_per_process
"""


def _threads_after(call: str, before: str = "") -> dict:
    code = (
        SET_UP
        + before
        + f"""
asked = {call}
import polars as pl
print(json.dumps({{"asked": asked, "threads": pl.thread_pool_size()}}))
"""
    )
    return json.loads(run_python(code))


def test_a_multi_process_run_gets_one_polars_thread():
    assert _threads_after("one_polars_thread_per_process(2)") == {"asked": True, "threads": 1}


def test_a_forked_worker_inherits_the_single_thread():
    code = (
        SET_UP
        + """
one_polars_thread_per_process(2)
import polars as pl
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
with ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as pool:
    print(pool.submit(pl.thread_pool_size).result())
"""
    )
    assert run_python(code) == "1"


def test_one_process_polars_already_imported_or_a_users_setting_are_left_alone():
    one = _threads_after("one_polars_thread_per_process(1)")
    assert one["asked"] is False and one["threads"] >= 1
    late = _threads_after("one_polars_thread_per_process(2)", before="import polars\n")
    assert late["asked"] is False
    assert late["threads"] == one["threads"]  # the pool's size was fixed at import
    users = _threads_after(
        "one_polars_thread_per_process(2)", before="os.environ['POLARS_MAX_THREADS'] = '3'\n"
    )
    assert users == {"asked": False, "threads": 3}


def test_the_cli_runs_with_one_polars_thread_and_says_so(tmp_path):
    code = f"""
import json, os
os.environ.pop("POLARS_MAX_THREADS", None)
from pipelines.curate import main
assert main(["--workers", "2", "--no-report", "--out", {str(tmp_path / "out")!r}]) == 0
print(json.load(open({str(tmp_path / "out" / "manifest.json")!r}))["engine"]["polars_threads"])
"""
    assert run_python(code) == "1"
