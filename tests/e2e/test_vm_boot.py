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

"""Real VMs under TCG, reached through :class:`LibvirtTransport`.

Four domains run on the private libvirtd, one per guest variant of
``tests/fixtures/build_guest_image.py``: ``qga`` (both agents and an ext4 data
disk) boots first and alone, so that its boot time is not shared with
other boots; ``late`` (agents start after :data:`LATE_DELAY` s),
``noagent`` (no agent ever) and ``hung`` (the guest opens the agent port,
nothing answers) boot together once the ``qga`` tests are done.  Every
command goes through real libvirt, real virtio-serial and real
``qemu-ga``; nothing is mocked.  The tests run in file order.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import time

import pytest

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport_libvirt
from tests.fixtures import build_guest_image
from tests.fixtures import libvirt_env as env_fixtures
from tests.fixtures import vm as vm_fixtures

pytestmark = pytest.mark.e2e

LATE_DELAY = 12
#: a typed error for a paused / gone / agent-less domain comes at once:
#: well before libvirt's own 5 s guest-sync wait, even on a loaded machine
FAST = 3.0


@pytest.fixture(scope='module')
def qga_vm(vm_launcher: vm_fixtures.VmLauncher) -> vm_fixtures.Vm:
    """The normal guest: both agents, data disk, NIC."""
    return vm_launcher.start_guest('e2e-qga', 'qga')


@pytest.fixture(scope='module')
def other_vms(vm_launcher: vm_fixtures.VmLauncher) -> dict[str, vm_fixtures.Vm]:
    """late, noagent and hung, started together (they boot in parallel)."""
    small = {'data_disk': False, 'monitor_channel': False, 'nic': False}
    return {
        'late': vm_launcher.start_guest('e2e-late', 'late', delay=LATE_DELAY, **small),
        'noagent': vm_launcher.start_guest('e2e-noagent', 'noagent', **small),
        'hung': vm_launcher.start_guest('e2e-hung', 'hung', **small),
    }


@pytest.fixture
def transport_of(libvirtd, libvirt_provider):
    """``transport_of(vm)`` -> a LibvirtTransport on the shared provider."""
    conf = env_fixtures.poller_conf(libvirtd.uri)

    def make(vm: vm_fixtures.Vm) -> transport_libvirt.LibvirtTransport:
        return transport_libvirt.LibvirtTransport(vm.name, libvirt_provider, vm.uuid, conf)
    return make


async def _timed(coro) -> tuple[float, object]:
    started = time.monotonic()
    try:
        result = await coro
    except errors.QgaError as exc:
        result = exc
    return time.monotonic() - started, result


async def test_boot_to_first_ping(qga_vm, vm_launcher, transport_of, e2e_timings):
    """The agent answers through libvirt after boot; generation 1."""
    qga = transport_of(qga_vm)
    boot = await vm_fixtures.wait_for_agent(qga, qga_vm.started_at,
                                            diagnostics=vm_launcher.diagnostics(qga_vm))
    e2e_timings['boot_to_first_ping_s'] = boot
    assert qga.generation == 1 and qga.channel_state == 'connected'
    assert 'agents-started' in qga_vm.serial_text()


async def test_commands_through_libvirt(qga_vm, transport_of):
    """ping, fsinfo and a /proc/meminfo read; fsinfo matches the guest's df."""
    vm = qga_vm
    qga = transport_of(vm)
    assert await qga.execute('guest-ping') == {}

    fsinfo = await qga.execute('guest-get-fsinfo')
    mounts = {fs['mountpoint']: fs for fs in fsinfo}
    assert set(mounts) == {'/mnt'}, fsinfo  # the initramfs root is not listed
    data = mounts['/mnt']
    assert data['type'] == 'ext4' and data['name'] == 'vda'
    assert [d['dev'] for d in data['disk']] == ['/dev/vda']
    # What the guest's own statfs said at boot (as df computes it):
    seen = vm.statfs('/mnt')
    assert seen is not None, vm.serial_text()
    used = (seen['blocks'] - seen['bfree']) * seen['bsize']
    assert data['used-bytes'] == used
    assert data['total-bytes'] == used + seen['bavail'] * seen['bsize']
    assert data['used-bytes'] > build_guest_image.DATA_PAYLOAD_BYTES
    assert data['total-bytes'] < build_guest_image.DATA_DISK_MIB * 1024 * 1024

    handle = await qga.execute('guest-file-open', {'path': '/proc/meminfo', 'mode': 'r'})
    try:
        chunk = await qga.execute('guest-file-read', {'handle': handle, 'count': 65536})
    finally:
        await qga.execute('guest-file-close', {'handle': handle})
    meminfo = dict(line.split(':', 1) for line in
                   base64.b64decode(chunk['buf-b64']).decode().splitlines())
    total_kib = int(meminfo['MemTotal'].split()[0])
    assert 64 * 1024 < total_kib <= 128 * 1024  # the domain has 128 MiB

    # A command the guest lacks is typed, and the agent stays usable.
    with pytest.raises(errors.CommandNotSupported):
        await qga.execute('guest-get-load')
    assert await qga.execute('guest-ping') == {}


async def test_ping_latency(qga_vm, transport_of, e2e_timings):
    """Median guest-ping round trip through libvirt and virtio-serial."""
    qga = transport_of(qga_vm)
    await qga.execute('guest-ping')  # libvirt's sync with the agent
    times = []
    for _ in range(50):
        started = time.perf_counter()
        await qga.execute('guest-ping')
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    e2e_timings['libvirt_ping_median_ms'] = statistics.median(times)
    e2e_timings['libvirt_ping_p95_ms'] = times[int(len(times) * 0.95) - 1]
    started = time.perf_counter()
    await qga.execute('guest-get-fsinfo')
    e2e_timings['libvirt_fsinfo_ms'] = (time.perf_counter() - started) * 1000
    assert statistics.median(times) < 200


async def test_paused_domain(qga_vm, transport_of):
    """Paused: a typed error at once; resumed: answers, same generation."""
    vm = qga_vm
    qga = transport_of(vm)
    await qga.execute('guest-ping')
    assert qga.generation == 1
    await asyncio.to_thread(vm.dom.suspend)
    try:
        took, outcome = await _timed(qga.execute('guest-ping', timeout=5.0))
    finally:
        await asyncio.to_thread(vm.dom.resume)
    assert isinstance(outcome, errors.AgentNotConnected), outcome
    assert outcome.details['domain_state'] == 'paused'
    assert took < FAST
    assert await qga.execute('guest-ping') == {}
    assert qga.generation == 1


async def test_frozen_guest(qga_vm, transport_of):
    """During a freeze (Nova's quiesce) commands fail as AgentFrozen."""
    vm = qga_vm
    qga = transport_of(vm)
    frozen = await asyncio.to_thread(vm.dom.fsFreeze)
    try:
        assert frozen == 1  # the data disk
        with pytest.raises(errors.AgentFrozen, match='frozen state'):
            await qga.execute('guest-get-fsinfo')
        assert await qga.execute('guest-fsfreeze-status') == 'frozen'
    finally:
        await asyncio.to_thread(vm.dom.fsThaw)
    assert await qga.execute('guest-fsfreeze-status') == 'thawed'
    assert await qga.execute('guest-get-fsinfo')


async def test_libvirtd_restart(qga_vm, libvirtd, transport_of, e2e_timings):
    """The shared connection dies with the daemon and is reopened once.

    The first call after the restart meets the dead connection, hands it
    back and retries on a new one: the caller sees a normal reply.
    """
    qga = transport_of(qga_vm)
    await qga.execute('guest-ping')
    before = qga.connection.get()
    e2e_timings['libvirtd_restart_s'] = await asyncio.to_thread(libvirtd.restart_libvirtd)
    # The new daemon re-attaches the domain's agent on its own time (a
    # loaded machine makes it late): wait for that event, not a duration.
    await vm_fixtures.wait_for(lambda: qga_vm.channel_state() == 'connected',
                               120, what='libvirtd re-attaching the agent')
    assert await qga.execute('guest-ping') == {}
    assert qga.connection.get() is not before
    assert qga.generation == 1


async def test_late_and_missing_agents(other_vms, vm_launcher, transport_of, e2e_timings):
    """late answers only after its delay; noagent never.

    While they boot, ``noagent`` is asked again and again: each call fails
    fast with AgentNotConnected from the channel-state check (the port
    stays ``disconnected``), and its generation stays 0.  ``late`` is
    unreachable the same way until its agents start, then answers with
    generation 1.
    """
    vms = other_vms
    late, noagent = transport_of(vms['late']), transport_of(vms['noagent'])
    booted = asyncio.Event()
    noagent_calls: list[tuple[float, object]] = []

    async def watch_late() -> tuple[float, int]:
        refused = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                await late.execute('guest-ping', timeout=2.0)
                return time.monotonic() - vms['late'].started_at, refused
            except errors.AgentNotConnected:
                refused += 1
            except errors.AgentTimeout:
                pass  # libvirt attaching to the agent right now
            await asyncio.sleep(0.2)
        raise AssertionError('late agent never answered\n'
                             + vm_launcher.diagnostics(vms['late']))

    async def watch_noagent() -> None:
        while not booted.is_set():
            noagent_calls.append(await _timed(noagent.execute('guest-ping', timeout=2.0)))
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch_noagent())
    try:
        late_up, late_refused = await watch_late()
    finally:
        booted.set()
        await watcher
    e2e_timings['late_agent_first_ping_s'] = late_up

    assert late_refused > 0, 'late agent answered before its delay'
    assert late_up > LATE_DELAY
    assert late.generation == 1 and late.channel_state == 'connected'

    assert 'agents-disabled' in vms['noagent'].serial_text(), \
        vm_launcher.diagnostics(vms['noagent'])
    assert noagent_calls
    for took, outcome in noagent_calls:
        assert isinstance(outcome, errors.AgentNotConnected), outcome
        assert took < FAST
    took, outcome = await _timed(noagent.execute('guest-ping'))
    assert isinstance(outcome, errors.AgentNotConnected) and took < FAST
    assert 'has not opened' in outcome.message  # refused before any agent call
    assert noagent.channel_state == 'disconnected' and noagent.generation == 0


async def test_hung_agent_and_destroy_mid_call(other_vms, transport_of, e2e_timings):
    """An agent that never answers costs the deadline, not more.

    The ``hung`` guest opens its port (libvirt shows ``connected``) but
    nothing reads it: libvirt waits 5 s for its sync, our deadline is 1 s.
    While that C call still runs, the next call fails at once instead of
    queueing.  Destroying the domain does not cut the C call short (seen
    here: libvirt returns 5-7 s later); until it returns calls keep failing
    fast, and then the shut-off domain gives the typed error.
    """
    vm = other_vms['hung']
    hung = transport_of(vm)
    await vm_fixtures.wait_for(lambda: vm.channel_state() == 'connected', 120,
                               what='hung guest opening its port')
    took, outcome = await _timed(hung.execute('guest-ping', timeout=1.0))
    assert isinstance(outcome, errors.AgentTimeout), outcome
    assert 0.9 < took < 4.0  # the 1 s timeout, not libvirt's own wait
    took, outcome = await _timed(hung.execute('guest-ping', timeout=1.0))
    assert isinstance(outcome, errors.AgentTimeout), outcome
    assert took < 0.9 and 'not returned yet' in outcome.message  # no wait

    destroyed = time.monotonic()
    await asyncio.to_thread(vm.dom.destroy)
    deadline = destroyed + 20
    while True:
        outcome = (await _timed(hung.execute('guest-ping', timeout=1.0)))[1]
        if isinstance(outcome, errors.AgentNotConnected) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    e2e_timings['hung_destroy_to_typed_error_s'] = time.monotonic() - destroyed
    assert isinstance(outcome, errors.AgentNotConnected), outcome
    assert outcome.details['domain_state'] == 'shutoff'


async def test_destroyed_domain(qga_vm, transport_of):
    """Destroyed, then undefined: typed errors at once, no hang."""
    vm = qga_vm
    qga = transport_of(vm)
    await qga.execute('guest-ping')
    await asyncio.to_thread(vm.dom.destroy)
    took, outcome = await _timed(qga.execute('guest-ping', timeout=5.0))
    assert isinstance(outcome, errors.AgentNotConnected), outcome
    assert outcome.details['domain_state'] == 'shutoff' and took < FAST
    await asyncio.to_thread(vm.dom.undefine)
    took, outcome = await _timed(qga.execute('guest-ping', timeout=5.0))
    assert isinstance(outcome, errors.AgentNotConnected), outcome
    assert 'domain gone' in outcome.message and took < FAST


def test_image_cache_reused(guest_image):
    """A second build with the same inputs returns the cached image fast."""
    started = time.monotonic()
    again = build_guest_image.build()
    assert time.monotonic() - started < 1.0
    assert again.directory == guest_image.directory
