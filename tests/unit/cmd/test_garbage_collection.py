"""The console scripts' garbage-collector tuning (no mocks: the real gc)."""

import gc

from ceilometer_qga.cmd import garbage_collection


def test_tune_freezes_start_up_and_raises_thresholds():
    before = gc.get_threshold()
    try:
        garbage_collection.tune_for_sweeps()
        assert gc.get_threshold() == garbage_collection.THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_cycles_are_still_collected():
    before = gc.get_threshold()
    try:
        garbage_collection.tune_for_sweeps()

        class Node:
            pass
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        del a, b
        assert gc.collect() >= 2
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
