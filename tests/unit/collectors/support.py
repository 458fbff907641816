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

"""What the collector tests share: configuration and the data/ fixtures."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga import conf as qga_conf

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')


def make_conf(config_file: str | None = None, **polling: Any
              ) -> cfg.ConfigOpts:
    """A private ConfigOpts with every poller option, ``[qga_polling]`` set.

    No config file is read but ``config_file``, so the host's /etc cannot
    change a test.
    """
    conf = cfg.ConfigOpts()
    qga_conf.register_opts(conf)
    conf([] if config_file is None else ['--config-file', config_file],
         project='qga-monitor-tests', default_config_files=[])
    for name, value in polling.items():
        conf.set_override(name, value, group=qga_conf.POLLING_GROUP)
    return conf


def load_json(name: str) -> Any:
    """The decoded content of ``data/NAME``."""
    with open(os.path.join(DATA, name)) as src:
        return json.load(src)


def load_text(name: str) -> str:
    """The text of ``data/NAME``."""
    with open(os.path.join(DATA, name)) as src:
        return src.read()


def by_meter(result: base.ParseResult,
             item: str | None = None) -> dict[str, int | float]:
    """``{meter: volume}`` of the readings for one item (None: instance)."""
    volumes: dict[str, int | float] = {}
    for reading in result.readings:
        if reading.item == item:
            assert reading.meter not in volumes, reading
            volumes[reading.meter] = reading.volume
    return volumes


def items(result: base.ParseResult) -> list[str | None]:
    """Distinct items of the readings, in first-seen order."""
    seen: list[str | None] = []
    for reading in result.readings:
        if reading.item not in seen:
            seen.append(reading.item)
    return seen


def assert_sane(collector: base.Collector, result: base.ParseResult) -> None:
    """The invariants every ParseResult must keep, whatever the input.

    Known meter; volume a finite, non-negative real number that fits in 64
    bits (never a bool); a percentage within 0..100; an item exactly when
    the meter is per-resource, as a short printable string; no more items
    than ``max_items``; reasons are strings.
    """
    assert isinstance(result, base.ParseResult)
    meters = {meter.name: meter for meter in collector.meters}
    for reading in result.readings:
        meter = meters[reading.meter]
        volume = reading.volume
        assert not isinstance(volume, bool), reading
        assert isinstance(volume, (int, float)), reading
        assert math.isfinite(volume) and 0 <= volume < 2 ** 63, reading
        assert math.copysign(1.0, volume) > 0, reading  # no -0.0
        if meter.unit == '%':
            assert volume <= 100, reading
        if meter.scope == 'instance':
            assert reading.item is None, reading
        else:
            assert isinstance(reading.item, str), reading
            assert 0 < len(reading.item) <= 255, reading
            assert not any(ord(c) < 32 or ord(c) == 127
                           for c in reading.item), reading
        assert isinstance(reading.metadata, dict), reading
    per_item = [i for i in items(result) if i is not None]
    assert len(per_item) <= collector.conf.qga_polling.max_items
    assert all(isinstance(reason, str) and reason
               for reason in result.dropped), result.dropped
