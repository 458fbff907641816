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

"""The sweep engine against real qemu-ga 7.2 stand-in guests.

Real parts: qemu-ga processes (tests/fixtures/agents/qga_standin.py), the static discovery,
every collector, the socket transport.  The unresponsive guest is a unix
socket that accepts connections and never answers, which is exactly what a
VM's channel looks like while nothing in the guest reads it (the ``hung``
VM of tests/e2e/test_vm_boot.py is the real thing).
"""

import asyncio
import contextlib
import os
import socket
import tempfile
import time

import pytest

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga import pipeline as pipeline_mod
from ceilometer_qga import poller as poller_mod
from tests.fixtures.agents.qga_standin import StandinFleet
from tests.fixtures.agents.qga_standin import StandinGuest
from tests.fixtures.static_guests import make_conf

pytestmark = pytest.mark.functional

UUIDS = ['11111111-1111-4111-8111-%012d' % i for i in range(1, 9)]
HUNG_UUID = '99999999-9999-4999-8999-999999999999'
# What qemu-ga 7.2 on a Linux host gives, and how (the meter catalogue,
# ceilometer_qga/meters.py and the collectors).
NATIVE_72 = {'guest.filesystem.used', 'guest.filesystem.total',
             'guest.filesystem.usage', 'guest.cpu.time',
             'guest.disk.read.bytes', 'guest.disk.write.bytes',
             'guest.disk.read.requests', 'guest.disk.write.requests',
             'guest.network.incoming.bytes', 'guest.network.outgoing.bytes',
             'guest.network.incoming.packets',
             'guest.network.outgoing.packets',
             'guest.network.incoming.errors', 'guest.network.outgoing.errors',
             'guest.network.incoming.drops', 'guest.network.outgoing.drops',
             'guest.users', 'guest.vcpus.online'}
FALLBACK_72 = {'guest.memory.total', 'guest.memory.available',
               'guest.memory.used', 'guest.load.1', 'guest.load.5',
               'guest.load.15'}


@pytest.fixture
def workdir():
    # Short path: unix socket paths are limited to 108 bytes.
    path = tempfile.mkdtemp(prefix='qgat', dir='/tmp')
    yield path
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if not os.path.isdir(full):
            os.unlink(full)


@pytest.fixture
def hung_socket(workdir):
    """A listening socket nobody ever reads from or answers on."""
    path = os.path.join(workdir, 'hung.sock')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(16)
    yield path
    sock.close()


def sweep(conf, times=1):
    async def run():
        runner = pipeline_mod.Pipeline(conf)
        try:
            return [await runner.run_once() for _ in range(times)]
        finally:
            await runner.close()
    return asyncio.run(run())


def by_guest(result):
    out = {}
    for s in result.samples:
        out.setdefault(s.resource_metadata['instance_id'], []).append(s)
    return out


def test_every_meter_qemu_ga_72_can_give(workdir):
    with StandinFleet(1, workdir=workdir) as fleet:
        [result] = sweep(make_conf([(UUIDS[0], fleet[0].socket)]))
    samples = result.samples
    names = {s.name for s in samples}
    assert names == NATIVE_72 | FALLBACK_72 | {'guest.agent.up',
                                               'guest.agent.latency'}
    via = {s.name: s.resource_metadata.get('collected_by') for s in samples}
    assert all(via[n] == 'native' for n in NATIVE_72)
    assert all(via[n] == 'fallback' for n in FALLBACK_72)
    value = {}
    for s in samples:
        value.setdefault(s.name, []).append(s)
    assert value['guest.agent.up'][0].volume == 1
    assert 0 < value['guest.agent.latency'][0].volume < 1000
    root = [s for s in value['guest.filesystem.total']
            if s.resource_metadata['mountpoint'] == '/']
    assert root and root[0].resource_id == UUIDS[0] + '-_2F'
    st = os.statvfs('/')
    # qga 7.2: total = used + available to non-root (not df's size).
    expect_total = (st.f_blocks - st.f_bfree + st.f_bavail) * st.f_frsize
    assert abs(root[0].volume - expect_total) / expect_total < 0.01
    for s in value['guest.filesystem.usage']:
        assert 0 <= s.volume <= 100
    with open('/proc/meminfo') as f:
        mem_total_kib = int(f.readline().split()[1])
    assert value['guest.memory.total'][0].volume == pytest.approx(
        mem_total_kib / 1024)
    used = value['guest.memory.used'][0].volume
    avail = value['guest.memory.available'][0].volume
    assert 0 < used < value['guest.memory.total'][0].volume
    assert used + avail == pytest.approx(value['guest.memory.total'][0]
                                         .volume)
    assert value['guest.vcpus.online'][0].volume == os.cpu_count()
    assert value['guest.cpu.time'][0].volume > 0
    assert value['guest.load.1'][0].volume >= 0
    ifaces = {s.resource_metadata['vnic_name']
              for s in value['guest.network.incoming.bytes']}
    assert 'lo' not in ifaces and 'eth0' in ifaces
    up = value['guest.agent.up'][0].resource_metadata
    assert up['agent_version'].startswith('7.2')
    assert up['agent_state'] == 'ok'


def test_blocked_commands_are_skipped_not_zeroed(workdir):
    guest = StandinGuest('blk', workdir, extra_block=(
        'guest-get-fsinfo', 'guest-file-open'))
    guest.start()
    try:
        conf = make_conf([(UUIDS[0], guest.socket)])
        [result] = sweep(conf)
    finally:
        guest.stop()
    names = {s.name for s in result.samples}
    assert not any(n.startswith('guest.filesystem.') for n in names)
    # memory and load can only come from /proc on 7.2: gone with file-open
    assert not any(n.startswith(('guest.memory.', 'guest.load.'))
                   for n in names)
    assert 'guest.cpu.time' in names and 'guest.agent.up' in names
    [report] = result.reports
    skipped = {o.name: o.reason for o in report.outcomes
               if o.source == 'skipped'}
    assert 'guest-get-fsinfo not offered' in skipped['filesystem']
    assert 'guest-file-* not offered' in skipped['memory']


def test_file_reads_can_be_disabled(workdir):
    with StandinFleet(1, workdir=workdir) as fleet:
        [result] = sweep(make_conf([(UUIDS[0], fleet[0].socket)],
                                   allow_file_reads=False))
    names = {s.name for s in result.samples}
    assert 'guest.memory.total' not in names and 'guest.load.1' not in names
    assert 'guest.cpu.time' in names  # native: unaffected


def test_hung_guest_is_reported_down_and_does_not_stall_the_others(
        workdir, hung_socket):
    with StandinFleet(3, workdir=workdir) as fleet:
        guests = [(UUIDS[i], g.socket) for i, g in enumerate(fleet)]
        guests.insert(1, (HUNG_UUID, hung_socket))
        conf = make_conf(guests, command_timeout=0.5, guest_budget=1.0,
                         max_concurrent_guests=4)
        start = time.monotonic()
        [result] = sweep(conf)
        elapsed = time.monotonic() - start
    # The hung guest costs one command timeout, in parallel with the rest.
    assert elapsed < 1.0 + 1.0, elapsed
    samples = by_guest(result)
    hung = samples[HUNG_UUID]
    assert [s.name for s in hung] == ['guest.agent.up']
    assert hung[0].volume == 0
    assert hung[0].resource_metadata['agent_state'] == 'timeout'
    for uuid, _sock in guests:
        if uuid == HUNG_UUID:
            continue
        names = {s.name for s in samples[uuid]}
        assert 'guest.cpu.time' in names and 'guest.memory.used' in names
        up = [s for s in samples[uuid] if s.name == 'guest.agent.up'][0]
        assert up.volume == 1


def test_failing_guest_is_backed_off_and_reported(workdir):
    path = os.path.join(workdir, 'hung.sock')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    conf = make_conf([(HUNG_UUID, path)], command_timeout=0.3,
                     backoff_initial=60.0)
    try:
        first, second = sweep(conf, times=2)
        # What the poller wrote to the hung guest over both sweeps, read
        # from the connections the kernel queued for the listener.
        listener.settimeout(0)
        sent = b''
        with contextlib.suppress(BlockingIOError):
            while True:
                conn, _ = listener.accept()
                conn.settimeout(1.0)
                with conn:
                    while chunk := conn.recv(65536):
                        sent += chunk
    finally:
        listener.close()
    assert first.samples[0].resource_metadata['agent_state'] == 'timeout'
    up = second.samples[0]
    assert up.name == 'guest.agent.up' and up.volume == 0
    assert up.resource_metadata['agent_state'] == 'backoff'
    assert 'last:' in up.resource_metadata['agent_error']
    # the second sweep did not contact the guest: one handshake in all
    assert sent.count(b'guest-sync-delimited') == 1, sent


def test_absent_socket_is_not_connected(workdir):
    conf = make_conf([(UUIDS[0], os.path.join(workdir, 'nobody.sock'))])
    [result] = sweep(conf)
    [up] = result.samples
    assert up.volume == 0
    assert up.resource_metadata['agent_state'] == 'not_connected'


def test_agent_restart_is_survived_and_capabilities_reread(workdir):
    guest = StandinGuest('rst', workdir)
    guest.start()
    try:
        conf = make_conf([(UUIDS[0], guest.socket)], backoff_initial=0.0)

        async def run():
            runner = pipeline_mod.Pipeline(conf)
            try:
                first = await runner.run_once()
                session = runner.poller.sessions[UUIDS[0]]
                generation = session.transport.generation
                # Kill the agent; the supervisor starts a new one.
                os.kill(guest.pid, 9)
                deadline = time.monotonic() + 10
                results = []
                while time.monotonic() < deadline:
                    results.append(await runner.run_once())
                    if results[-1].reports[0].up:
                        break
                    await asyncio.sleep(0.05)
                return first, results, generation, session.transport.generation
            finally:
                await runner.close()
        first, later, gen_before, gen_after = asyncio.run(run())
    finally:
        guest.stop()
    assert first.reports[0].up
    assert later[-1].reports[0].up
    assert gen_after > gen_before  # reconnected, capabilities re-read
    assert {s.name for s in later[-1].samples} >= {'guest.cpu.time'}


def test_power_state_change_reaches_an_existing_session(workdir):
    with StandinFleet(1, workdir=workdir) as fleet:
        conf = make_conf([(UUIDS[0], fleet[0].socket)])
        channel = Channel('org.openstack.monitor.0', fleet[0].socket)

        def guest(state):
            return Guest(UUIDS[0], 'instance-1', channels=(channel,),
                         metadata={'state': state})

        async def run():
            poller = poller_mod.Poller(conf, load_collectors(conf))
            try:
                first = await poller.sweep([guest('running')])
                second = await poller.sweep([guest('paused')])
                third = await poller.sweep([guest('running')])
                return first, second, third
            finally:
                await poller.close()
        first, second, third = asyncio.run(run())
    assert first.reports[0].up
    assert second.reports[0].state == 'paused' and not second.reports[0].up
    assert third.reports[0].up


def test_frozen_guest_is_alive_but_reported_frozen(fake_agent):
    """The fake answers as qemu-ga 7.2 does during a Nova quiesce."""
    agent = fake_agent('frozen')
    conf = make_conf([(UUIDS[0], agent.socket)])
    first, second = sweep(conf, times=2)
    for result in (first, second):
        [report] = result.reports
        assert report.up and report.state == 'frozen'
        up = [s for s in result.samples if s.name == 'guest.agent.up'][0]
        assert up.volume == 1
        assert up.resource_metadata['agent_state'] == 'frozen'
    # each sweep asked again (frozen is temporary), and was told "frozen"
    outcomes = {o.name: o for o in second.reports[0].outcomes}
    assert outcomes['filesystem'].error_state == 'frozen'
    assert outcomes['cpu'].error_state == 'frozen'


def test_freeze_is_seen_and_capabilities_are_reread_at_the_thaw(
        fake_agent, workdir):
    """The fake's frozen mode is qemu-ga 7.2's (guest-info lists every
    non-freeze-safe command disabled); the poller asks guest-fsfreeze-status
    and does not keep the frozen capabilities after the thaw.
    """
    flag = os.path.join(workdir, 'frozen.flag')
    open(flag, 'w').close()
    agent = fake_agent('frozen', freeze_file=flag)
    conf = make_conf([(UUIDS[0], agent.socket)])

    async def run():
        runner = pipeline_mod.Pipeline(conf)
        try:
            frozen = await runner.run_once()
            os.unlink(flag)
            thawed = await runner.run_once()
            return frozen, thawed
        finally:
            await runner.close()
    frozen, thawed = asyncio.run(run())
    assert frozen.reports[0].state == 'frozen'
    assert {s.name for s in frozen.samples} == {'guest.agent.up',
                                                'guest.agent.latency'}
    assert thawed.reports[0].state == 'ok'
    names = {s.name for s in thawed.samples}
    assert {'guest.filesystem.used', 'guest.filesystem.total',
            'guest.filesystem.usage', 'guest.cpu.time'} <= names


def test_invalid_items_are_one_warning_per_incident_not_per_value(
        fake_agent, caplog):
    """Issue 9: 10,000 invalid filesystems and interfaces gave 20,000
    WARNING lines per sweep.  Now: one line for the guest, with counts,
    and none in the next sweep while nothing changes.
    """
    agent = fake_agent('invalid-items', items=10000)
    conf = make_conf([(UUIDS[0], agent.socket)], command_timeout=5.0,
                     guest_budget=20.0)
    caplog.set_level('WARNING', logger='ceilometer_qga')

    async def run():
        runner = pipeline_mod.Pipeline(conf)
        try:
            first = await runner.run_once()
            first_lines = [r for r in caplog.records
                           if r.levelname == 'WARNING']
            caplog.clear()
            second = await runner.run_once()
            return first, first_lines, second, list(caplog.records)
        finally:
            await runner.close()
    first, first_lines, second, second_lines = asyncio.run(run())
    for result in (first, second):
        [report] = result.reports
        assert report.up
        names = {s.name for s in result.samples}
        assert not any(n.startswith(('guest.filesystem.', 'guest.network.'))
                       for n in names)
    assert len(first_lines) == 1, [r.getMessage()[:200] for r in first_lines]
    message = first_lines[0].getMessage()
    assert UUIDS[0] in message and '10000' in message
    assert len(message) < 2000
    assert [r for r in second_lines if r.levelname == 'WARNING'] == []
