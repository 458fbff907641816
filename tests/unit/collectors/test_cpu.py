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

"""CpuCollector on real qemu-ga 7.2 cpustats, real /proc/stat, and nonsense."""

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import cpu
from tests.unit.collectors import support

TIME = 'guest.cpu.time'
BUSY = ('user', 'nice', 'system', 'irq', 'softirq', 'steal')


def _collector():
    return cpu.CpuCollector(support.make_conf())


def _busy_ms(reply):
    return sum(entry[field] for entry in reply for field in BUSY)


def _stat_from_cpustats(reply):
    """The /proc/stat a USER_HZ=100 kernel shows for a cpustats reply."""
    order = ('user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq',
             'steal', 'guest', 'guestnice')
    lines = []
    for entry in reply:
        lines.append('cpu%d %s' % (entry['cpu'], ' '.join(
            str(entry[field] // 10) for field in order)))
    total = [sum(entry[field] // 10 for entry in reply) for field in order]
    return 'cpu  %s\n%s\nctxt 1\n' % (' '.join(map(str, total)),
                                      '\n'.join(lines))


def _entry(cpu_number=0, **fields):
    entry = {'cpu': cpu_number, 'type': 'linux', 'user': 100, 'nice': 10,
             'system': 50, 'idle': 1000, 'iowait': 7, 'irq': 1,
             'softirq': 2, 'steal': 3, 'guest': 0, 'guestnice': 0}
    entry.update(fields)
    return {k: v for k, v in entry.items() if v is not None}


def test_real_cpustats_are_milliseconds_summed_to_ns():
    collector = _collector()
    reply = support.load_json('cpustats.json')
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert result.dropped == []
    [reading] = result.readings
    assert reading.meter == TIME
    assert reading.volume == _busy_ms(reply) * 1000 * 1000
    assert reading.metadata == {'cpu_number': 2}
    assert isinstance(reading.volume, int)


def test_real_proc_stat_is_user_hz_ticks():
    collector = _collector()
    result = collector.parse_file(support.load_text('stat.txt'))
    support.assert_sane(collector, result)
    assert result.dropped == []
    [reading] = result.readings
    # cpu0 + cpu1 busy ticks of the capture, at 10 ms each
    busy = (2947 + 0 + 1595 + 0 + 15 + 7) + (7802 + 0 + 2966 + 0 + 66 + 13)
    assert reading.volume == busy * 10 * 1000 * 1000
    assert reading.metadata == {'cpu_number': 2}


def test_native_and_fallback_agree_on_one_capture():
    """cpustats and /proc/stat read back to back from one real qemu-ga.

    The two reads are a fraction of a millisecond apart, so the busy time
    may have grown by a few ticks in between; 0.5 % is hundreds of times
    that, and a unit mistake (x10, x1000) is far outside it.
    """
    pair = support.load_json('cpu_pair.json')
    native = _collector().parse(pair['cpustats']).readings[0].volume
    fallback = _collector().parse_file(pair['stat']).readings[0].volume
    assert fallback == pytest.approx(native, rel=0.005)


def test_native_and_fallback_agree_on_separate_captures():
    native = _collector().parse(
        support.load_json('cpustats.json')).readings[0].volume
    fallback = _collector().parse_file(
        support.load_text('stat.txt')).readings[0].volume
    assert fallback == pytest.approx(native, rel=0.005)


def test_native_and_fallback_are_equal_for_the_same_instant():
    reply = support.load_json('cpustats.json')
    # the agent computes ticks * 1000 / 100, so every field is a multiple of
    # 10 ms and the /proc/stat it read can be rebuilt exactly
    assert all(entry[f] % 10 == 0 for entry in reply for f in BUSY)
    native = _collector().parse(reply)
    fallback = _collector().parse_file(_stat_from_cpustats(reply))
    assert native.readings == fallback.readings


def test_idle_iowait_guest_are_not_busy_time():
    base_result = _collector().parse([_entry()])
    busier = _collector().parse([_entry(idle=10 ** 9, iowait=10 ** 9,
                                        guest=90, guestnice=10)])
    expected = (100 + 10 + 50 + 1 + 2 + 3) * 1000 * 1000
    assert base_result.readings[0].volume == expected
    assert busier.readings[0].volume == expected


def test_old_kernel_without_optional_fields():
    entry = _entry(iowait=None, irq=None, softirq=None, steal=None,
                   guest=None, guestnice=None)
    result = _collector().parse([entry])
    assert result.dropped == []
    assert result.readings[0].volume == 160 * 1000 * 1000


def test_old_proc_stat_with_four_fields():
    result = _collector().parse_file('cpu  5 0 5 90\ncpu0 5 0 5 90\n')
    assert result.dropped == []
    assert result.readings[0].volume == 10 * 10 * 1000 * 1000


@pytest.mark.parametrize('reply, reason', [
    ([], 'listed no CPU'),
    (['cpu0'], 'cpustats entry #0 is not an object'),
    ([_entry(type='windows')], "type 'windows', not linux"),
    ([_entry(type=None)], 'type None, not linux'),
    ([_entry(cpu_number=None)], 'no valid cpu number'),
    ([_entry(cpu_number=True)], 'no valid cpu number'),
    ([_entry(cpu_number=-1)], 'no valid cpu number'),
    ([_entry(0), _entry(0)], 'CPU 0 is listed twice'),
    ([_entry(user=None)], 'CPU 0 user is missing'),
    ([_entry(system=-5)], 'CPU 0 system is negative'),
    ([_entry(nice=False)], 'CPU 0 nice is not a number'),
    ([_entry(steal=1.5)], 'CPU 0 steal is not an integer'),
    ([_entry(irq='1')], 'CPU 0 irq is not a number'),
    ([_entry(user=2 ** 62, system=2 ** 62)], 'guest.cpu.time is absurdly large'),
    ([_entry(0), _entry(1, softirq=-1)], 'CPU 1 softirq is negative'),
])
def test_any_bad_cpu_drops_the_whole_reading(reply, reason):
    collector = _collector()
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert result.readings == []
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]
    assert result.dropped[0].endswith('no CPU time reported')


@pytest.mark.parametrize('reply', [None, {}, 'cpu', 1.5])
def test_native_reply_that_is_not_a_list_is_a_bad_reply(reply):
    with pytest.raises(base.BadReply, match='guest-get-cpustats'):
        _collector().parse(reply)


@pytest.mark.parametrize('text, reason', [
    ('cpu0 1 2 x 4\n', 'cpu0 system is not a count'),
    ('cpu0 1 2 -3 4\n', 'cpu0 system is not a count'),
    ('cpu0 1 2 3\n', 'cpu0 has 3 fields, expected at least 4'),
    ('cpu0 1 2 3 4\ncpu0 1 2 3 4\n', 'lists cpu0 twice'),
    ('cpux 1 2 3 4\n', "line 'cpux' is not a CPU"),
    ('cpu0 1 2 3 4 5 6 7 99999999999999999999\n',
     'guest.cpu.time is absurdly large'),
    ('cpu0 1 2 3 4 5 6 7 ٣\n', 'cpu0 steal is not a count'),
])
def test_bad_proc_stat_line_drops_the_reading(text, reason):
    result = _collector().parse_file(text)
    assert result.readings == []
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


@pytest.mark.parametrize('text', ['', 'intr 1 2\nctxt 5\n', 'cpu  1 2 3 4\n'])
def test_proc_stat_without_cpun_line_is_a_bad_reply(text):
    with pytest.raises(base.BadReply, match='no cpuN line'):
        _collector().parse_file(text)


def test_proc_stat_that_is_not_text_is_a_bad_reply():
    with pytest.raises(base.BadReply, match='not text'):
        _collector().parse_file(None)
