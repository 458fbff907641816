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

"""DiskCollector on a real qemu-ga 7.2 diskstats reply and on nonsense."""

import re

import pytest

from ceilometer_qga import collectors
from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import disk
from tests.unit.collectors import support


def _collector(exclude=None, **polling):
    conf = support.make_conf(**polling)
    if exclude is not None:
        conf.set_override('exclude', exclude, 'disk_collector')
    return disk.DiskCollector(conf)


def _disk(name='vdb', **stats):
    values = {'read-ios': 4, 'read-sectors': 8, 'write-ios': 2,
              'write-sectors': 16, 'read-ticks': 1}
    values.update(stats)
    return {'name': name, 'major': 252, 'minor': 16,
            'stats': {k: v for k, v in values.items() if v is not None}}


def test_real_capture_reports_vda_and_excludes_loop_and_zram():
    collector = _collector()
    reply = support.load_json('diskstats.json')
    assert {'loop0', 'zram0', 'vda'} <= {d['name'] for d in reply}
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert result.dropped == []
    assert support.items(result) == ['vda']
    stats = [d for d in reply if d['name'] == 'vda'][0]['stats']
    assert support.by_meter(result, 'vda') == {
        'guest.disk.read.bytes': stats['read-sectors'] * 512,
        'guest.disk.write.bytes': stats['write-sectors'] * 512,
        'guest.disk.read.requests': stats['read-ios'],
        'guest.disk.write.requests': stats['write-ios'],
    }
    assert support.by_meter(result, 'vda')['guest.disk.read.bytes'] > 0
    for reading in result.readings:
        assert reading.metadata == {'disk_name': 'vda'}


def test_empty_exclusion_reports_every_device():
    result = _collector(exclude='').parse(
        support.load_json('diskstats.json'))
    assert len(support.items(result)) == 10
    assert result.dropped == []


def test_custom_exclusion():
    result = _collector(exclude='^vd').parse(
        support.load_json('diskstats.json'))
    assert 'vda' not in support.items(result)
    assert 'loop0' in support.items(result)


def test_invalid_exclusion_refuses_to_load():
    with pytest.raises(ValueError, match=re.escape('[disk_collector] exclude')):
        _collector(exclude='[')


def test_the_old_option_name_still_works(tmp_path):
    """``[qga_polling] disk_exclude`` (before the collector had its own
    group) is read as ``[disk_collector] exclude``.
    """
    path = tmp_path / 'qga.conf'
    path.write_text('[qga_polling]\ndisk_exclude = ^vd\n')
    conf = support.make_conf(config_file=str(path))
    result = disk.DiskCollector(conf).parse(
        support.load_json('diskstats.json'))
    assert 'vda' not in support.items(result)
    assert 'loop0' in support.items(result)


def test_the_loader_hands_the_collector_its_own_group():
    conf = support.make_conf()
    conf.set_override('exclude', '^vd', 'disk_collector')
    [collector] = collectors.load_collectors(conf, ['disk'])
    assert collector.opts.exclude == '^vd'
    result = collector.parse(support.load_json('diskstats.json'))
    assert 'vda' not in support.items(result)


def test_cap_applies_after_exclusion():
    collector = _collector(max_items=3)
    reply = [_disk('loop%d' % i) for i in range(5)]
    reply += [_disk('vd%s' % c) for c in 'abcde']
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert support.items(result) == ['vda', 'vdb', 'vdc']
    assert result.dropped == ['2 disks over [qga_polling] max_items=3 left out']


@pytest.mark.parametrize('entry, reason', [
    (['vdx'], 'disk #0 is not an object'),
    ({'stats': {}}, 'name of disk #0 is not a string'),
    (dict(_disk(), name=''), 'name of disk #0 is empty'),
    (dict(_disk(), name='v' * 300), 'longer than 255'),
    (dict(_disk(), stats=None), "disk 'vdb' has no stats object"),
    (dict(_disk(), stats=[1, 2]), "disk 'vdb' has no stats object"),
])
def test_unusable_disk_is_dropped_with_a_reason(entry, reason):
    collector = _collector()
    result = collector.parse([entry, _disk('vdz')])
    support.assert_sane(collector, result)
    assert support.items(result) == ['vdz']
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


@pytest.mark.parametrize('stats, meter, reason', [
    ({'read-sectors': None}, 'guest.disk.read.bytes',
     "disk 'vdb' read-sectors is missing"),
    ({'write-sectors': -1}, 'guest.disk.write.bytes',
     "disk 'vdb' write-sectors is negative"),
    ({'read-ios': True}, 'guest.disk.read.requests',
     "disk 'vdb' read-ios is not a number"),
    ({'write-ios': 2.5}, 'guest.disk.write.requests',
     "disk 'vdb' write-ios is not an integer"),
    ({'read-sectors': 2 ** 62}, 'guest.disk.read.bytes',
     "disk 'vdb' guest.disk.read.bytes is absurdly large"),
    ({'write-ios': float('inf')}, 'guest.disk.write.requests',
     "disk 'vdb' write-ios is not finite"),
])
def test_one_bad_counter_drops_only_that_meter(stats, meter, reason):
    collector = _collector()
    result = collector.parse([_disk(**stats)])
    support.assert_sane(collector, result)
    volumes = support.by_meter(result, 'vdb')
    assert meter not in volumes and len(volumes) == 3
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


def test_duplicate_name_keeps_the_first():
    result = _collector().parse([_disk('vdb', **{'read-ios': 1}),
                                 _disk('vdb', **{'read-ios': 2})])
    assert support.by_meter(result, 'vdb')['guest.disk.read.requests'] == 1
    assert result.dropped == ["disk 'vdb' is listed twice"]


@pytest.mark.parametrize('reply', [None, {}, 'vda', 0])
def test_reply_that_is_not_a_list_is_a_bad_reply(reply):
    with pytest.raises(base.BadReply, match='guest-get-diskstats'):
        _collector().parse(reply)
