import ast
import pickle

import pytest
from threadpoolctl import threadpool_info

import curation.run.pipeline as pipeline
from curation.run.blas_threads import one_blas_thread
from tests.helpers import run_python, thread_pools


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def blas_loaded():
    if not blas_threads():
        pytest.skip("numpy was built without a BLAS library that threadpoolctl can control")


def test_one_blas_thread_for_the_block_then_as_before(blas_loaded):
    before = blas_threads()
    with one_blas_thread():
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_as_before_after_an_error_too(blas_loaded):
    before = blas_threads()
    with pytest.raises(RuntimeError), one_blas_thread():
        raise RuntimeError("stage failed")
    assert blas_threads() == before


def test_a_curate_run_holds_blas_to_one_thread(blas_loaded, monkeypatch, tmp_path):
    from curation.config import config_from_dict

    seen = []
    monkeypatch.setattr(pipeline, "_run_curation", lambda *args: seen.append(blas_threads()))
    before = blas_threads()
    pipeline.run_curation(cfg=config_from_dict({}), out=tmp_path / "out")
    assert seen == [[1] * len(before)]
    assert blas_threads() == before


def test_a_map_worker_runs_with_one_blas_thread(blas_loaded):
    code = (
        "import pickle\n"
        "from threadpoolctl import threadpool_info\n"
        "from curation.run.engine import _init_worker\n"
        "_init_worker(pickle.dumps([]))\n"
        "print([lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas'])\n"
    )
    threads = ast.literal_eval(run_python(code))
    assert threads and set(threads) == {1}


def test_forked_map_workers_size_their_thread_pools_for_one_process_per_core():
    from concurrent.futures import ProcessPoolExecutor

    from curation.run.engine import _init_worker, worker_context

    ctx = worker_context()
    with ProcessPoolExecutor(
        1, mp_context=ctx, initializer=_init_worker, initargs=(pickle.dumps([]),)
    ) as pool:
        pools = pool.submit(thread_pools).result(timeout=120)
    assert pools["polars"] == 1
    assert set(pools["blas"]) <= {1}
