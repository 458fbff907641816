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

"""Pollsters with no agent behind them: what ``ceilometer-polling`` costs per sample.

The bench's ``Ceilometer floor`` row loads one :class:`FloorPollster` per
meter of ours (``floor.<meter>``, :func:`write_distribution`) into the real
``ceilometer-polling``, on the same fleet, the same discovery (Ceilometer's
``local_instances``) and the same configuration as the ``ours in
ceilometer-polling`` row.  Each yields, per polling cycle, exactly as many
samples as our pollster of that meter did on that fleet, built the same
way (Ceilometer's ``make_sample_from_instance``, with metadata copied from
one of our samples), so the agent wraps, signs and hands to its notifier
the same number of samples of the same size.  What ours costs above this
row is what our pollsters themselves cost: asking the guests and building
the samples; the rest is Ceilometer's own per-sample work, which no
pollster can avoid.

The counts and metadata come from the JSON file named by the environment
variable ``QGA_BENCH_FLOOR``: ``{meter: {"count": N, "type": T, "unit":
U, "metadata": {...}}}``, written by the bench from a ``qga-polling
--once`` sweep of the fleet.
"""

from __future__ import annotations

from collections.abc import Iterator
import functools
import importlib.metadata
import json
import os
from typing import Any

from ceilometer.compute.pollsters import util
from ceilometer.polling import plugin_base
from ceilometer import sample as ceilometer_sample

ENV = 'QGA_BENCH_FLOOR'
PREFIX = 'floor.'
GROUP = 'ceilometer.poll.compute'


@functools.lru_cache(maxsize=1)
def _plan(path: str) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


class FloorPollster(plugin_base.PollsterBase):
    """``count`` samples of one meter per cycle, spread over the instances."""

    #: the meter of ours this pollster stands for
    meter_name = ''

    @property
    def default_discovery(self) -> str:
        """The discovery our pollsters use."""
        return 'local_instances'

    def get_samples(self, manager: Any, cache: dict,
                    resources: list[Any]) -> Iterator[ceilometer_sample.Sample]:
        plan = _plan(os.environ[ENV]).get(self.meter_name)
        if not plan or not resources:
            return
        for index in range(plan['count']):
            instance = resources[index % len(resources)]
            yield util.make_sample_from_instance(
                self.conf, instance, name=PREFIX + self.meter_name,
                type=plan['type'], unit=plan['unit'], volume=index,
                resource_id='%s-%d' % (instance.id, index),
                additional_metadata=dict(plan['metadata']))


def _our_meters() -> list[str]:
    return sorted(ep.name for ep in importlib.metadata.entry_points(group=GROUP)
                  if ep.name.startswith('guest.'))


def _class_name(meter: str) -> str:
    return 'Floor_' + meter.replace('.', '_')


# One class per meter of ours, so that the agent runs as many pollsters.
for _meter in _our_meters():
    globals()[_class_name(_meter)] = type(
        _class_name(_meter), (FloorPollster,), {'meter_name': _meter})


def write_distribution(site: str) -> list[str]:
    """A ``*.dist-info`` under ``site`` declaring the floor pollsters.

    With ``site`` on the agent's ``PYTHONPATH`` (and the repository, for
    this module), stevedore finds them as installed entry points.
    :returns: the pollster names (``floor.guest.*``)
    """
    info = os.path.join(site, 'qga_bench_floor-0.dist-info')
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, 'METADATA'), 'w') as f:
        f.write('Metadata-Version: 2.1\nName: qga-bench-floor\nVersion: 0\n')
    names = [PREFIX + meter for meter in _our_meters()]
    with open(os.path.join(info, 'entry_points.txt'), 'w') as f:
        f.write('[%s]\n' % GROUP)
        for meter in _our_meters():
            f.write('%s%s = %s:%s\n' % (PREFIX, meter, __name__,
                                        _class_name(meter)))
    return names


def plan_from_samples(path: str) -> dict[str, Any]:
    """Counts per meter of the last sweep in a ``file://`` output, and one
    sample's type, unit and non-instance metadata per meter.
    """
    from ceilometer_qga.pollsters import instance_guests
    by_sweep: dict[str, list[dict[str, Any]]] = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                sample = json.loads(line)
                by_sweep.setdefault(sample['counter_name'], []).append(sample)
    plan = {}
    for meter, samples in by_sweep.items():
        first = samples[0]
        plan[meter] = {
            'count': len(samples),
            'type': first['counter_type'], 'unit': first['counter_unit'],
            'metadata': {k: v for k, v in first['resource_metadata'].items()
                         if k not in instance_guests.INSTANCE_KEYS}}
    return plan
