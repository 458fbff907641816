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

"""LoadCollector on guest-get-load (qemu-ga 10), real /proc/loadavg, nonsense."""

import math

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import load
from tests.unit.collectors import support

METERS = ('guest.load.1', 'guest.load.5', 'guest.load.15')


def _collector():
    return load.LoadCollector(support.make_conf())


def test_qga10_reply():
    collector = _collector()
    result = collector.parse(support.load_json('load_qga10.json'))
    support.assert_sane(collector, result)
    assert result.dropped == []
    assert support.by_meter(result) == {
        'guest.load.1': 0.42, 'guest.load.5': 0.3, 'guest.load.15': 0.16}


def test_real_proc_loadavg():
    collector = _collector()
    text = support.load_text('loadavg.txt')
    result = collector.parse_file(text)
    support.assert_sane(collector, result)
    assert result.dropped == []
    expected = [float(word) for word in text.split()[:3]]
    assert [support.by_meter(result)[m] for m in METERS] == expected


def test_native_and_fallback_agree():
    native = _collector().parse({'load1m': 1.25, 'load5m': 0.5,
                                 'load15m': 0.0})
    fallback = _collector().parse_file('1.25 0.50 0.00 2/100 4242\n')
    assert native.readings == fallback.readings


def test_integral_load_from_agent_is_kept():
    result = _collector().parse({'load1m': 3, 'load5m': 2, 'load15m': 1})
    assert support.by_meter(result)['guest.load.1'] == 3


@pytest.mark.parametrize('key, value, reason', [
    ('load1m', None, 'load1m is missing'),
    ('load5m', '0.5', 'load5m is not a number'),
    ('load15m', True, 'load15m is not a number'),
    ('load1m', math.nan, 'load1m is not finite'),
    ('load1m', math.inf, 'load1m is not finite'),
    ('load5m', -0.1, 'load5m is negative'),
    ('load15m', 1e40, 'load15m is absurdly large'),
])
def test_one_bad_load_drops_only_that_meter(key, value, reason):
    collector = _collector()
    reply = {'load1m': 1.0, 'load5m': 2.0, 'load15m': 3.0}
    if value is None:
        del reply[key]
    else:
        reply[key] = value
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert len(result.readings) == 2
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


@pytest.mark.parametrize('reply', [None, [], [0.1, 0.2, 0.3], '0.1 0.2 0.3'])
def test_native_reply_that_is_not_an_object_is_a_bad_reply(reply):
    with pytest.raises(base.BadReply, match='guest-get-load'):
        _collector().parse(reply)


@pytest.mark.parametrize('word', ['nan', 'inf', '-1.0', '1e999', '1_0',
                                  '0x10', '١.٠', '.5', '5.'])
def test_proc_loadavg_accepts_only_plain_decimals(word):
    result = _collector().parse_file('%s 0.20 0.30 1/2 3\n' % word)
    assert set(support.by_meter(result)) == {'guest.load.5', 'guest.load.15'}
    assert len(result.dropped) == 1
    assert 'load1m is not a load' in result.dropped[0]


@pytest.mark.parametrize('text', ['', '0.1 0.2', '\n\n'])
def test_proc_loadavg_with_too_few_fields_is_a_bad_reply(text):
    with pytest.raises(base.BadReply, match='expected at least 3'):
        _collector().parse_file(text)


def test_proc_loadavg_that_is_not_text_is_a_bad_reply():
    with pytest.raises(base.BadReply, match='not text'):
        _collector().parse_file(b'0.1 0.2 0.3')
