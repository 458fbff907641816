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

"""FilesystemCollector on real qemu-ga 7.2 replies and on nonsense."""

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import filesystem
from tests.unit.collectors import support

USED = 'guest.filesystem.used'
TOTAL = 'guest.filesystem.total'
USAGE = 'guest.filesystem.usage'


def _collector(**polling):
    return filesystem.FilesystemCollector(support.make_conf(**polling))


def _entry(mountpoint='/data', name='vdb', used=10, total=40, **extra):
    entry = {'mountpoint': mountpoint, 'name': name, 'type': 'xfs',
             'used-bytes': used, 'total-bytes': total, 'disk': []}
    entry.update(extra)
    return entry


def test_real_capture_gives_plausible_root_usage():
    collector = _collector()
    reply = support.load_json('fsinfo.json')
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert result.dropped == []
    assert support.items(result) == ['/']
    volumes = support.by_meter(result, '/')
    assert volumes[USED] == reply[0]['used-bytes']
    assert volumes[TOTAL] == reply[0]['total-bytes']
    assert 0 < volumes[USED] < volumes[TOTAL]
    assert volumes[USAGE] == pytest.approx(
        100.0 * volumes[USED] / volumes[TOTAL])
    assert 0 < volumes[USAGE] < 100
    for reading in result.readings:
        assert reading.metadata == {'mountpoint': '/', 'fstype': 'ext4',
                                    'device': 'vda'}


def test_real_bind_mount_is_one_resource_at_the_shortest_mountpoint():
    collector = _collector()
    reply = support.load_json('fsinfo_bind.json')
    assert sorted(e['mountpoint'] for e in reply) == ['/', '/tmp/cap/bindmnt']
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert support.items(result) == ['/']
    assert result.dropped == []
    assert len(result.readings) == 3


def test_windows_volume_without_sizes_is_skipped_quietly():
    collector = _collector()
    result = collector.parse(support.load_json('fsinfo_windows.json'))
    support.assert_sane(collector, result)
    assert result.dropped == []
    assert support.items(result) == ['C:\\', 'D:\\']
    c_drive = support.by_meter(result, 'C:\\')
    assert c_drive[USED] == 16180703232
    assert c_drive[TOTAL] == 42396921856
    assert c_drive[USAGE] == pytest.approx(38.164, abs=0.001)
    assert result.readings[0].metadata['device'] == (
        '\\\\?\\Volume{6b8d2f3a-0000-0000-0000-501f00000000}\\')
    # the empty DVD drive: sizes, but no percentage of nothing
    assert support.by_meter(result, 'D:\\') == {USED: 0, TOTAL: 0}


def test_qga91_privileged_total_goes_into_metadata():
    collector = _collector()
    result = collector.parse(support.load_json('fsinfo_qga91.json'))
    support.assert_sane(collector, result)
    assert support.items(result) == ['/', '/boot/efi']
    root = [r for r in result.readings if r.item == '/']
    for reading in root:
        assert reading.metadata['total_bytes_privileged'] == 10331619328
    assert support.by_meter(result, '/')[TOTAL] == 9802866688


def test_usage_of_a_full_filesystem_is_exactly_100():
    big = 2 ** 63 - 1
    result = _collector().parse([_entry(used=big, total=big)])
    assert support.by_meter(result, '/data')[USAGE] == 100.0


@pytest.mark.parametrize('entry, reason', [
    ('not an object', 'filesystem #0 is not an object'),
    (_entry(used=50, total=40), 'used-bytes 50 exceeds total-bytes 40'),
    (_entry(used=-1), 'used-bytes is negative'),
    (_entry(total=-40), 'total-bytes is negative'),
    (_entry(used=True), 'used-bytes is not a number'),
    (_entry(used=float('nan')), 'used-bytes is not finite'),
    (_entry(used=10.5), 'used-bytes is not an integer'),
    (_entry(total='40'), 'total-bytes is not a number'),
    (_entry(total=2 ** 64), 'total-bytes is absurdly large'),
    (_entry(total=None), 'total-bytes is missing'),
    (_entry(used=None), 'used-bytes is missing'),
    (_entry(mountpoint=None), 'mountpoint of filesystem #0 is not a string'),
    (_entry(mountpoint=7), 'mountpoint of filesystem #0 is not a string'),
    (_entry(mountpoint=''), 'mountpoint of filesystem #0 is empty'),
    (_entry(mountpoint='/' + 'x' * 255), 'longer than 255 characters'),
    (_entry(mountpoint='/a\nb'), 'control characters'),
])
def test_nonsense_entry_is_dropped_with_a_reason(entry, reason):
    collector = _collector()
    good = _entry(mountpoint='/ok', name='vdc')
    result = collector.parse([entry, good])
    support.assert_sane(collector, result)
    assert support.items(result) == ['/ok']
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


@pytest.mark.parametrize('reply', [None, {}, 'fsinfo', 42, {'return': []}])
def test_reply_that_is_not_a_list_is_a_bad_reply(reply):
    with pytest.raises(base.BadReply, match='guest-get-fsinfo'):
        _collector().parse(reply)


def test_empty_list_means_no_filesystem():
    result = _collector().parse([])
    assert result.readings == [] and result.dropped == []


def test_bad_privileged_total_only_loses_the_metadata():
    result = _collector().parse([_entry(**{'total-bytes-privileged': -3})])
    assert result.dropped == []
    assert len(result.readings) == 3
    assert 'total_bytes_privileged' not in result.readings[0].metadata


def test_mountpoint_mounted_over_keeps_the_visible_last_entry():
    result = _collector().parse([
        _entry(mountpoint='/data', name='vdb', used=1, total=10),
        _entry(mountpoint='/data', name='vdc', used=2, total=10),
    ])
    assert support.items(result) == ['/data']
    assert support.by_meter(result, '/data')[USED] == 2
    assert result.readings[0].metadata['device'] == 'vdc'


def test_entries_without_device_name_are_not_folded_together():
    result = _collector().parse([
        _entry(mountpoint='/a', name=None),
        _entry(mountpoint='/b', name=None),
    ])
    assert support.items(result) == ['/a', '/b']
    assert 'device' not in result.readings[0].metadata


def test_bind_mounts_fold_to_shortest_then_lexically_first():
    result = _collector().parse([
        _entry(mountpoint='/srv/b', name='vdb'),
        _entry(mountpoint='/srv/a', name='vdb'),
        _entry(mountpoint='/var/lib/x', name='vdb'),
        _entry(mountpoint='/home', name='dm-0'),
    ])
    assert support.items(result) == ['/srv/a', '/home']


def test_more_filesystems_than_max_items_are_capped_with_a_reason():
    collector = _collector(max_items=5)
    reply = [_entry(mountpoint='/m%d' % i, name='vd%d' % i)
             for i in range(8)]
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert support.items(result) == ['/m%d' % i for i in range(5)]
    assert result.dropped == [
        '3 filesystems over [qga_polling] max_items=5 left out']
