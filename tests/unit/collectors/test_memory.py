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

"""MemoryCollector on real /proc/meminfo and on nonsense."""

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import memory
from tests.unit.collectors import support

TOTAL = 'guest.memory.total'
AVAILABLE = 'guest.memory.available'
USED = 'guest.memory.used'


def _collector():
    return memory.MemoryCollector(support.make_conf())


def _kib(text, key):
    for line in text.splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1])
    raise KeyError(key)


def test_declares_fallback_only():
    assert memory.MemoryCollector.command is None
    assert memory.MemoryCollector.fallback_file == '/proc/meminfo'


def test_native_parse_is_refused():
    with pytest.raises(base.BadReply, match='no native qga command'):
        _collector().parse({})


def test_real_meminfo_in_mib():
    collector = _collector()
    text = support.load_text('meminfo.txt')
    result = collector.parse_file(text)
    support.assert_sane(collector, result)
    assert result.dropped == []
    volumes = support.by_meter(result)
    assert volumes[TOTAL] == _kib(text, 'MemTotal') / 1024
    assert volumes[AVAILABLE] == _kib(text, 'MemAvailable') / 1024
    assert volumes[USED] == pytest.approx(volumes[TOTAL] - volumes[AVAILABLE])
    assert 0 < volumes[USED] < volumes[AVAILABLE] < volumes[TOTAL]
    assert all(isinstance(v, float) for v in volumes.values())
    available = [r for r in result.readings if r.meter == AVAILABLE][0]
    assert available.metadata == {'available_from': 'MemAvailable'}


def test_old_kernel_without_memavailable_uses_free_buffers_cached():
    result = _collector().parse_file(
        support.load_text('meminfo_no_available.txt'))
    assert result.dropped == []
    volumes = support.by_meter(result)
    assert volumes[TOTAL] == 2054764 / 1024
    assert volumes[AVAILABLE] == (512344 + 81236 + 903112) / 1024
    assert volumes[USED] == (2054764 - 512344 - 81236 - 903112) / 1024
    assert result.readings[1].metadata == {
        'available_from': 'MemFree+Buffers+Cached'}


@pytest.mark.parametrize('text, reason, meters', [
    ('MemFree: 10 kB\nMemAvailable: 5 kB\n',
     'no MemTotal', set()),
    ('MemTotal: 100 kB\nMemAvailable: 200 kB\n',
     'MemAvailable 200 kB exceeds MemTotal 100 kB', {TOTAL}),
    ('MemTotal: 100 kB\nMemFree: 10 kB\n',
     'neither MemAvailable nor MemFree, Buffers and Cached', {TOTAL}),
    ('MemTotal: 99999999999999999999 kB\nMemAvailable: 5 kB\n',
     'MemTotal is absurdly large', set()),
    ('MemTotal: 100 kB\nMemFree: 99999999999999999999 kB\nBuffers: 1 kB\n'
     'Cached: 1 kB\n',
     'MemFree+Buffers+Cached is absurdly large', {TOTAL}),
    # a sign, a fraction or a foreign unit makes the line no figure at all
    ('MemTotal: -100 kB\nMemAvailable: 5 kB\n', 'no MemTotal', set()),
    ('MemTotal: 1.5 kB\nMemAvailable: 5 kB\n', 'no MemTotal', set()),
    ('MemTotal: 100 MB\nMemAvailable: 5 kB\n', 'no MemTotal', set()),
])
def test_nonsense_is_dropped_with_a_reason(text, reason, meters):
    collector = _collector()
    result = collector.parse_file(text)
    support.assert_sane(collector, result)
    assert set(support.by_meter(result)) == meters
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


def test_first_occurrence_of_a_key_wins():
    result = _collector().parse_file(
        'MemTotal: 2048 kB\nMemAvailable: 1024 kB\nMemTotal: 1 kB\n')
    assert support.by_meter(result)[TOTAL] == 2.0


@pytest.mark.parametrize('text', [None, b'MemTotal: 1 kB', 42])
def test_content_that_is_not_text_is_a_bad_reply(text):
    with pytest.raises(base.BadReply, match='not text'):
        _collector().parse_file(text)


@pytest.mark.parametrize('text', ['', 'garbage\n', 'HugePages_Total: 0\n',
                                  '{"return": {}}'])
def test_text_without_any_figure_is_a_bad_reply(text):
    with pytest.raises(base.BadReply, match='no "Name: N kB" line'):
        _collector().parse_file(text)
