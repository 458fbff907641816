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

"""The cyclic garbage collector, tuned for sweeps of thousands of samples.

A sweep of 1,000 guests builds about 25,000 samples, each a few dicts and
lists, that live until the publishers have them and are then freed by
reference counting: none of them is in a cycle.  With CPython's default
thresholds (700, 10, 10) those allocations set off a young collection every
700 containers and a full one, scanning every live object, several times
per sweep: a measurable share of the poller's CPU, spent finding no
garbage.

So ``qga-polling`` freezes what start-up made (modules, configuration,
plugins: never garbage, never scanned again) and raises the young
generation's threshold so that a sweep sets off a collection only every
50,000 surviving containers.  Cycles are still collected, only less often.
Only the console scripts call this: inside a Ceilometer agent the process
is Ceilometer's, and so is its collector.
"""

from __future__ import annotations

import gc

#: (young, middle, old) thresholds; see the module docstring
THRESHOLDS = (50000, 20, 100)


def tune_for_sweeps() -> None:
    """Freeze the start-up heap and raise the collection thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
