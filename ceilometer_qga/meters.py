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

"""The meter catalogue: the engine's liveness meters plus the collectors'.

Each collector declares its meters (``Collector.meters``, a class
attribute); the engine adds ``guest.agent.up`` and ``guest.agent.latency``,
which every guest gets in every sweep.  ``qga-polling`` builds its
catalogue from the collectors it runs, the Ceilometer pollsters from every
installed collector: both through :func:`catalogue`, so that they always
agree on a meter's type and unit.
"""

from __future__ import annotations

from collections.abc import Iterable
import functools
import importlib.metadata

from ceilometer_qga import collectors
from ceilometer_qga.collectors import base as collector_base

AGENT_UP = collector_base.Meter('guest.agent.up', collector_base.GAUGE,
                                'agent')
AGENT_LATENCY = collector_base.Meter('guest.agent.latency',
                                     collector_base.GAUGE, 'ms')
LIVENESS_METERS = (AGENT_UP, AGENT_LATENCY)


def catalogue(sources: Iterable[collector_base.Collector
                                | type[collector_base.Collector]]
              ) -> dict[str, collector_base.Meter]:
    """Meter name -> meter: the liveness meters and those of ``sources``.

    :param sources: collectors, or collector classes (``meters`` is a class
        attribute, so nothing needs to be instantiated)
    """
    meters = {m.name: m for m in LIVENESS_METERS}
    for source in sources:
        meters.update((m.name, m) for m in source.meters)
    return meters


@functools.lru_cache(maxsize=None)
def installed() -> dict[str, collector_base.Meter]:
    """The catalogue of every installed collector, enabled or not."""
    return catalogue(entry_point.load() for entry_point in
                     importlib.metadata.entry_points(group=collectors.NAMESPACE))
