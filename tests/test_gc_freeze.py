import gc

import pytest

from curation.run.gc_freeze import older_objects_frozen


def test_objects_from_before_are_frozen_for_the_run_and_unfrozen_after():
    assert gc.get_freeze_count() == 0
    with older_objects_frozen():
        assert gc.get_freeze_count() > 1000
        garbage = [[] for _ in range(10)]
        for a, b in zip(garbage, garbage[1:], strict=False):  # cycles created during the run
            a.append(b)
            b.append(a)
        del garbage, a, b
        assert gc.collect() >= 10  # what the run creates is still collected
    assert gc.get_freeze_count() == 0


def test_unfrozen_after_an_error_too():
    with pytest.raises(RuntimeError), older_objects_frozen():
        raise RuntimeError("stage failed")
    assert gc.get_freeze_count() == 0


def test_a_caller_that_froze_objects_itself_is_left_alone():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with older_objects_frozen():
            pass
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()
