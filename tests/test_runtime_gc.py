"""While the runtime runs, a batch's objects die young: holding a Kafka poll's worth of
records and dropping them sets off no collection of the cycle collector."""

from __future__ import annotations

import gc

from service.config import Settings
from service.runtime import YOUNG_COLLECTION_THRESHOLD, Runtime


def collections_while(work) -> int:
    started = []
    callback = lambda phase, info: started.append(info["generation"]) if phase == "start" else None  # noqa: E731
    gc.collect()
    gc.callbacks.append(callback)
    try:
        work()
    finally:
        gc.callbacks.remove(callback)
    return len(started)


def a_poll_of_records() -> None:
    records = [(offset, [], b"value") for offset in range(5000)]  # a tuple and a headers list each
    del records


def test_a_running_service_collects_no_garbage_for_a_batch_it_held_and_restores_the_threshold(tmp_path):
    process = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's default, whatever a runtime left unstopped in this process set
    try:
        assert collections_while(a_poll_of_records) > 0
        runtime = Runtime(Settings.model_validate({"state_dir": str(tmp_path)}))
        runtime.start()
        try:
            assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
            assert collections_while(a_poll_of_records) == 0
        finally:
            runtime.stop()
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*process)


def test_the_runtime_raises_only_the_young_threshold_and_never_lowers_it(tmp_path):
    """The older generations' thresholds are the process's, and a young threshold already
    above the runtime's (set by whoever embeds it) is left as it is."""
    process = gc.get_threshold()
    try:
        for before, running in (((700, 20, 30), (YOUNG_COLLECTION_THRESHOLD, 20, 30)),
                                ((2 * YOUNG_COLLECTION_THRESHOLD, 10, 10), (2 * YOUNG_COLLECTION_THRESHOLD, 10, 10))):
            gc.set_threshold(*before)
            runtime = Runtime(Settings.model_validate({"state_dir": str(tmp_path / str(before[0]))}))
            runtime.start()
            try:
                assert gc.get_threshold() == running
            finally:
                runtime.stop()
            assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*process)
