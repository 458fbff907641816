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

"""The /proc fallbacks of disk, network and filesystem, on real captures.

``disk_pair.json`` and ``net_pair.json`` hold a real qemu-ga 7.2 native
reply and the /proc file of its fallback, read back to back on one
connection (``record_qga_replies.py --collector-data``): the two sources must give the same
devices and, up to the I/O of the capture itself, the same counters.
``mounts.txt`` is the stand-in's real ``/proc/mounts``.
"""

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import disk
from ceilometer_qga.collectors import filesystem
from ceilometer_qga.collectors import network
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import policy
from tests.unit.collectors import support

CONF = support.make_conf()


def _close(native, fallback, tolerance):
    """Same items and meters; counters within ``tolerance`` (relative)."""
    assert support.items(native) == support.items(fallback)
    assert native.readings
    for item in support.items(native):
        a, b = support.by_meter(native, item), support.by_meter(fallback, item)
        assert a.keys() == b.keys()
        for meter in a:
            assert abs(a[meter] - b[meter]) <= tolerance * max(a[meter], 1), \
                (item, meter, a[meter], b[meter])


def test_diskstats_fallback_matches_guest_get_diskstats():
    collector = disk.DiskCollector(CONF)
    pair = support.load_json('disk_pair.json')
    native = collector.parse(pair['native'])
    fallback = collector.parse_file(pair['file'])
    support.assert_sane(collector, fallback)
    assert fallback.dropped == []
    assert support.items(fallback) == ['vda']
    _close(native, fallback, 0.01)
    assert all(r.metadata == {'disk_name': 'vda'} for r in fallback.readings)


def test_diskstats_of_kernels_before_2_6_25_four_counter_partitions():
    collector = disk.DiskCollector(CONF)
    text = ('   3    0 hda 446216 784926 9550688 4382310 424847 312726 '
            '5922052 19310380 0 3376340 23705160\n'
            '   3    1 hda1 35486 38030 38030 38030\n')
    result = collector.parse_file(text)
    assert support.by_meter(result, 'hda') == {
        'guest.disk.read.bytes': 9550688 * 512,
        'guest.disk.write.bytes': 5922052 * 512,
        'guest.disk.read.requests': 446216,
        'guest.disk.write.requests': 424847}
    assert support.by_meter(result, 'hda1') == {
        'guest.disk.read.bytes': 38030 * 512,
        'guest.disk.write.bytes': 38030 * 512,
        'guest.disk.read.requests': 35486,
        'guest.disk.write.requests': 38030}


def test_diskstats_lines_that_do_not_fit_are_left_out_whole():
    collector = disk.DiskCollector(CONF)
    result = collector.parse_file(
        ' 252 0 vda 1 2 3 4 5 6 7 8 9 10 11\n'
        ' 252 16 vdb 1 2 x 4 5 6 7 8 9 10 11\n'
        ' 252 32 vdc 1 2\n'
        'garbage\n')
    assert support.items(result) == ['vda']
    with pytest.raises(base.BadReply):
        collector.parse_file(b'252 0 vda 1 2 3 4 5 6 7')


def test_net_dev_fallback_matches_statistics_and_adds_unaddressed():
    collector = network.NetworkCollector(CONF)
    pair = support.load_json('net_pair.json')
    native = collector.parse(pair['native'])
    assert not native.incomplete  # 7.2 has statistics (for eth0)
    fallback = collector.parse_file(pair['file'])
    support.assert_sane(collector, fallback)
    assert fallback.dropped == []
    # The agent gives statistics only to interfaces with an address; the
    # file has them all (lo is excluded by default either way).
    assert set(support.items(native)) == {'eth0'}
    assert set(support.items(fallback)) == {'eth0', 'ifb0', 'ifb1'}
    eth_native = support.by_meter(native, 'eth0')
    eth_file = support.by_meter(fallback, 'eth0')
    assert eth_native.keys() == eth_file.keys()
    for meter, value in eth_native.items():
        assert abs(value - eth_file[meter]) <= 0.01 * max(value, 1), meter
    assert all(r.metadata == {'vnic_name': r.item}
               for r in fallback.readings)


def test_interfaces_without_any_statistics_are_incomplete():
    """qemu-ga older than 2.11: names and addresses, no statistics."""
    collector = network.NetworkCollector(CONF)
    pair = support.load_json('net_pair.json')
    old = [{k: v for k, v in entry.items() if k != 'statistics'}
           for entry in pair['native']]
    result = collector.parse(old)
    assert result.incomplete and result.readings == []
    assert not collector.parse([]).incomplete


def test_net_dev_header_and_odd_lines():
    collector = network.NetworkCollector(CONF)
    result = collector.parse_file(
        'Inter-|   Receive                            |  Transmit\n'
        ' face |bytes    packets errs drop fifo frame compressed multicast|'
        'bytes    packets errs drop fifo colls carrier compressed\n'
        '  eth0: 10 2 0 1 0 0 0 0 20 3 4 5 0 0 0 0\n'
        '  eth1: 10 2 0\n'
        'eth2:30 4 0 0 0 0 0 0 40 5 0 0 0 0 0 0\n')
    assert support.by_meter(result, 'eth0') == {
        'guest.network.incoming.bytes': 10,
        'guest.network.outgoing.bytes': 20,
        'guest.network.incoming.packets': 2,
        'guest.network.outgoing.packets': 3,
        'guest.network.incoming.errors': 0,
        'guest.network.outgoing.errors': 4,
        'guest.network.incoming.drops': 1,
        'guest.network.outgoing.drops': 5}
    assert support.items(result) == ['eth0', 'eth2']


def test_fsinfo_without_sizes_is_incomplete():
    """qemu-ga < 3.0 lists filesystems without used/total bytes."""
    collector = filesystem.FilesystemCollector(CONF)
    old = [{'name': 'vda1', 'mountpoint': '/', 'type': 'xfs', 'disk': []}]
    assert collector.parse(old).incomplete
    assert not collector.parse(support.load_json('fsinfo.json')).incomplete
    assert not collector.parse([]).incomplete


def test_mounts_list_the_block_devices_once_each():
    collector = filesystem.FilesystemCollector(CONF)
    text = support.load_text('mounts.txt')
    assert collector.fallback_items(text) == ['/']
    mounts = filesystem.parse_mounts(
        '/dev/vda1 / ext4 rw 0 0\n'
        'proc /proc proc rw 0 0\n'
        '/dev/vda1 /srv/bind ext4 rw 0 0\n'
        '/dev/vdb /mnt/my\\040data xfs rw 0 0\n'
        '//server/share /mnt/smb cifs rw 0 0\n'
        '/dev/vdc relative ext4 rw 0 0\n'
        'short line\n')
    assert [(m['device'], m['mountpoint']) for m in mounts] == [
        ('vda1', '/'), ('vda1', '/srv/bind'), ('vdb', '/mnt/my data')]
    capped = filesystem.FilesystemCollector(support.make_conf(max_items=5))
    assert capped.fallback_items(
        '\n'.join('/dev/vd%s /m%d ext4 rw 0 0' % (chr(97 + i), i)
                  for i in range(20))) == ['/m%d' % i for i in range(5)]


def test_statvfs_fallback_computes_sizes_as_fsinfo_does():
    """used = (blocks - bfree) * frsize; total = used + bavail * frsize."""
    collector = filesystem.FilesystemCollector(CONF)
    text = '/dev/vda1 / xfs rw 0 0\n/dev/vdb /data ext4 rw 0 0\n'
    replies = {
        '/': {'f_bsize': 4096, 'f_frsize': 4096, 'f_blocks': 1000,
              'f_bfree': 400, 'f_bavail': 350, 'f_files': 10, 'f_ffree': 5,
              'f_favail': 5, 'f_fsid': 1, 'f_flag': 0, 'f_namemax': 255},
        '/data': {'f_bsize': 1024, 'f_frsize': 0, 'f_blocks': 10,
                  'f_bfree': 11, 'f_bavail': 1},
    }
    result = collector.parse_fallback(text, replies)
    support.assert_sane(collector, result)
    assert support.by_meter(result, '/') == {
        'guest.filesystem.used': 600 * 4096,
        'guest.filesystem.total': 950 * 4096,
        'guest.filesystem.usage': 100.0 * 600 / 950}
    assert result.readings[0].metadata == {
        'mountpoint': '/', 'fstype': 'xfs', 'device': 'vda1'}
    assert support.items(result) == ['/']
    assert result.dropped == [
        "filesystem '/data' f_bfree 11 exceeds f_blocks 10"]
    # A mountpoint without a reply (its statvfs failed) is just absent.
    assert collector.parse_fallback(text, {}).readings == []


def test_policy_allows_the_fallbacks_and_nothing_more():
    for path in ('/proc/diskstats', '/proc/net/dev', '/proc/mounts'):
        policy.check('g', 'guest-file-open', {'path': path, 'mode': 'r'})
    policy.check('g', 'guest-get-statvfs', {'path': '/var/lib'})
    for path in ('/proc/self/mounts', '/proc/net/tcp', '/etc/fstab'):
        with pytest.raises(errors.CommandForbidden):
            policy.check('g', 'guest-file-open', {'path': path, 'mode': 'r'})
    for args in (None, {}, {'path': 'relative'}, {'path': 5},
                 {'path': '/a\0b'}, {'path': '/' + 'a' * 5000},
                 {'path': '/', 'mode': 'w'}):
        with pytest.raises(errors.CommandForbidden):
            policy.check('g', 'guest-get-statvfs', args)
