# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

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
