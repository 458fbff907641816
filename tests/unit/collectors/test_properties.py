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

"""Property tests: whatever a guest sends, parsers keep their promises.

For arbitrary JSON-like replies (and arbitrary /proc text) every parser
either raises :class:`BadReply` or returns readings that pass
``support.assert_sane``: known meters, finite non-negative volumes within
64 bits, percentages within 0..100, valid items, at most ``max_items``.
Besides fully random input, "almost right" replies (the right keys with
random values) reach the code paths behind the shape checks.
"""

import math

from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import cpu
from ceilometer_qga.collectors import disk
from ceilometer_qga.collectors import filesystem
from ceilometer_qga.collectors import load
from ceilometer_qga.collectors import memory
from ceilometer_qga.collectors import network
from ceilometer_qga.collectors import users
from ceilometer_qga.collectors import vcpus
from ceilometer_qga.qga import os_facts as osfacts
from tests.unit.collectors import support

# A small cap, so that the max_items path is exercised too.
CONF = support.make_conf(max_items=3)
COLLECTORS = {
    'filesystem': filesystem.FilesystemCollector(CONF),
    'memory': memory.MemoryCollector(CONF),
    'cpu': cpu.CpuCollector(CONF),
    'load': load.LoadCollector(CONF),
    'disk': disk.DiskCollector(CONF),
    'network': network.NetworkCollector(CONF),
    'users': users.UsersCollector(CONF),
    'vcpus': vcpus.VcpusCollector(CONF),
}

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from([0, 1, 2 ** 63, 2 ** 63 + 1, -0.0, 1e308, '', 'C:\\']),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6),
                            st.dictionaries(st.text(max_size=8), inner,
                                            max_size=6)),
    max_leaves=40)
#: counters: mostly plausible, sometimes anything
counters = st.one_of(st.integers(min_value=0, max_value=2 ** 64), scalars)
names = st.one_of(st.sampled_from(['/', '/home', '/a/b', 'vda', 'vdb',
                                   'loop0', 'lo', 'eth0', 'eth1', 'C:\\',
                                   'x' * 256, 'a\nb']),
                  st.text(max_size=10), scalars)


def _maybe(**fields):
    """A dict strategy with each of ``fields`` present or not."""
    return st.fixed_dictionaries({}, optional=fields)


fsinfo_entry = _maybe(**{
    'mountpoint': names, 'name': names, 'type': names,
    'used-bytes': counters, 'total-bytes': counters,
    'total-bytes-privileged': counters})
cpustats_entry = _maybe(
    cpu=st.one_of(st.integers(min_value=-1, max_value=4), scalars),
    type=st.sampled_from(['linux', 'windows', None]),
    **{f: counters for f in ('user', 'nice', 'system', 'idle', 'iowait',
                             'irq', 'softirq', 'steal', 'guest',
                             'guestnice')})
diskstats_entry = _maybe(name=names, stats=st.one_of(_maybe(**{
    k: counters for k in ('read-ios', 'read-sectors', 'write-ios',
                          'write-sectors')}), scalars))
network_entry = _maybe(**{
    'name': names, 'hardware-address': names,
    'ip-addresses': st.lists(_maybe(**{'ip-address': names}), max_size=3),
    'statistics': st.one_of(_maybe(**{k: counters for k in (
        'rx-bytes', 'tx-bytes', 'rx-packets', 'tx-packets', 'rx-errs',
        'tx-errs', 'rx-dropped', 'tx-dropped')}), scalars)})
users_entry = _maybe(user=names, domain=names, **{'login-time': scalars})
vcpus_entry = _maybe(**{'logical-id': st.one_of(
    st.integers(min_value=-1, max_value=4), scalars),
    'online': st.one_of(st.booleans(), scalars)})
load_reply = _maybe(load1m=counters, load5m=counters,
                    load15m=st.floats(allow_nan=True, allow_infinity=True))

ALMOST_RIGHT = {
    'filesystem': st.lists(st.one_of(fsinfo_entry, scalars), max_size=8),
    'cpu': st.lists(st.one_of(cpustats_entry, scalars), max_size=4),
    'disk': st.lists(st.one_of(diskstats_entry, scalars), max_size=8),
    'network': st.lists(st.one_of(network_entry, scalars), max_size=8),
    'users': st.lists(st.one_of(users_entry, scalars), max_size=5),
    'vcpus': st.lists(st.one_of(vcpus_entry, scalars), max_size=5),
    'load': load_reply,
}

words = st.one_of(
    st.sampled_from(['cpu', 'cpu0', 'cpu1', 'MemTotal:', 'MemFree:',
                     'MemAvailable:', 'Buffers:', 'Cached:', 'kB', '0',
                     '12', '0.50', '-3', 'nan', 'inf', '1e999', '\n']),
    st.integers(min_value=-5, max_value=2 ** 70).map(str),
    st.text(max_size=8))
proc_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.lists(words, max_size=8).map(' '.join),
             max_size=8).map('\n'.join))


def _check(name, reply, from_file=False):
    collector = COLLECTORS[name]
    try:
        if from_file:
            result = collector.parse_file(reply)
        else:
            result = collector.parse(reply)
    except base.BadReply:
        return
    support.assert_sane(collector, result)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(set(COLLECTORS) - {'memory'})),
       reply=json_like)
def test_any_json_is_parsed_or_refused_as_bad_reply(name, reply):
    _check(name, reply)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(ALMOST_RIGHT)))
def test_almost_right_replies_keep_the_invariants(data, name):
    _check(name, data.draw(ALMOST_RIGHT[name]))


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(['memory', 'cpu', 'load']),
       text=st.one_of(proc_text, scalars))
# Found by hypothesis: a load above 2**63 in /proc/loadavg was kept.
@example(name='load', text='0 0 9223372036854776833')
def test_any_proc_text_is_parsed_or_refused_as_bad_reply(name, text):
    _check(name, text, from_file=True)


fallback_text = st.one_of(
    proc_text,
    st.lists(st.lists(st.one_of(words, st.sampled_from(
        ['/dev/vda', '/', '/mnt\\040x', 'eth0:', 'lo:', 'vda', '252', 'ext4',
         'cifs', 'proc'])), max_size=18).map(' '.join),
        max_size=8).map('\n'.join))
statvfs_reply = st.one_of(scalars, _maybe(**{k: counters for k in (
    'f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail')}))


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(['disk', 'network']),
       text=st.one_of(fallback_text, scalars))
def test_any_diskstats_or_net_dev_text_keeps_the_invariants(name, text):
    _check(name, text, from_file=True)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(fallback_text, scalars), data=st.data())
def test_any_mounts_and_statvfs_replies_keep_the_invariants(text, data):
    collector = COLLECTORS['filesystem']
    try:
        items = collector.fallback_items(text)
    except base.BadReply:
        return
    assert len(items) <= CONF.qga_polling.max_items
    assert all(isinstance(i, str) and i.startswith('/') for i in items)
    replies = {item: data.draw(statvfs_reply) for item in items}
    support.assert_sane(collector, collector.parse_fallback(text, replies))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=2 ** 40),
                         min_size=4, max_size=4), min_size=1, max_size=3))
def test_disk_native_equals_fallback_for_the_same_counters(rows):
    reply = [{'name': 'vd%s' % chr(97 + n), 'stats': dict(zip(
        ('read-ios', 'read-sectors', 'write-ios', 'write-sectors'), row))}
        for n, row in enumerate(rows)]
    text = '\n'.join('252 %d vd%s %d 0 %d 0 %d 0 %d 0 0 0 0'
                     % (n, chr(97 + n), *row) for n, row in enumerate(rows))
    assert (COLLECTORS['disk'].parse(reply).readings
            == COLLECTORS['disk'].parse_file(text).readings)


@settings(max_examples=100, deadline=None)
@given(reply=json_like)
def test_osfacts_never_raise_and_give_short_strings(reply):
    for facts in (osfacts.parse_osinfo(reply), osfacts.parse_hostname(reply)):
        assert isinstance(facts, dict)
        for key, value in facts.items():
            assert isinstance(key, str)
            assert isinstance(value, str) and 0 < len(value) <= 255


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=2 ** 30),
                         min_size=10, max_size=10),
                min_size=1, max_size=8))
def test_cpu_native_equals_fallback_for_the_same_ticks(ticks):
    """qga reports ticks * 1000 / USER_HZ ms; both paths give the same ns."""
    fields = ('user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq',
              'steal', 'guest', 'guestnice')
    reply = [dict(zip(fields, [t * 10 for t in row]), cpu=n, type='linux')
             for n, row in enumerate(ticks)]
    text = '\n'.join('cpu%d %s' % (n, ' '.join(map(str, row)))
                     for n, row in enumerate(ticks))
    native = COLLECTORS['cpu'].parse(reply)
    fallback = COLLECTORS['cpu'].parse_file(text)
    assert native.readings == fallback.readings
    assert len(native.readings) == 1


@settings(max_examples=100, deadline=None)
@given(total=st.integers(min_value=0, max_value=2 ** 50),
       data=st.data())
def test_memory_used_plus_available_is_total(total, data):
    available = data.draw(st.integers(min_value=0, max_value=total))
    result = COLLECTORS['memory'].parse_file(
        'MemTotal: %d kB\nMemAvailable: %d kB\n' % (total, available))
    volumes = support.by_meter(result)
    assert math.isclose(volumes['guest.memory.used']
                        + volumes['guest.memory.available'],
                        volumes['guest.memory.total'], rel_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(total=st.integers(min_value=1, max_value=2 ** 63 - 1), data=st.data())
def test_filesystem_usage_is_used_over_total(total, data):
    used = data.draw(st.integers(min_value=0, max_value=total))
    result = COLLECTORS['filesystem'].parse([
        {'mountpoint': '/', 'name': 'vda', 'used-bytes': used,
         'total-bytes': total}])
    usage = support.by_meter(result, '/')['guest.filesystem.usage']
    assert 0 <= usage <= 100
    assert math.isclose(usage, 100 * used / total, rel_tol=1e-12)
