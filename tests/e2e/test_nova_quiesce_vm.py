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

"""Nova's quiesce through ``QgaLibvirtDriver`` on real guests, real libvirt.

Guests are defined from the XML Nova's config objects write, run through
the default hook chain (``agent_channel``, ``monitor_channel``), on the
private libvirtd under TCG; their images have no ``hw_qemu_guest_agent``.
The driver's own ``quiesce``/``unquiesce`` run unchanged: ``_can_quiesce``
reads the real live XML (the channel and libvirt's ``state``) and
``_set_quiesced`` asks real libvirt to freeze through the real ``qemu-ga``
of the guest (``tests/fixtures/build_guest_image.py``, variant ``qga``: an ext4
data disk mounted at /mnt).

Not real here: the rest of nova-compute.  The driver object is made
without ``LibvirtDriver.__init__`` (which needs a whole compute host) and
its ``_host`` is the one method the quiesce path calls, ``get_guest``,
returning Nova's own ``Guest`` around the real domain.  The freeze is seen
from the agent's side with ``guest-fsfreeze-status`` sent through libvirt
on the same channel.
"""

from __future__ import annotations

import json
import threading
import time

import libvirt_qemu
from nova import context as nova_context
from nova import exception
from nova.virt.libvirt import guest as libvirt_guest
import pytest

from ceilometer_qga.qga import transport_libvirt
from nova_qga import driver
from tests.fixtures import libvirt_env as env_fixtures
from tests.fixtures import nova_domain as nova_domains
from tests.fixtures import vm as vm_fixtures

pytestmark = pytest.mark.e2e


class _Host:
    """``Host.get_guest`` on the private libvirtd's connection."""

    def __init__(self, launcher: vm_fixtures.VmLauncher) -> None:
        self.launcher = launcher

    def get_guest(self, instance):
        return libvirt_guest.Guest(self.launcher.call(
            lambda conn: conn.lookupByUUIDString(instance.uuid)))


@pytest.fixture(scope='module')
def qga_driver(vm_launcher):
    drv = driver.QgaLibvirtDriver.__new__(driver.QgaLibvirtDriver)
    drv._host = _Host(vm_launcher)
    drv._agent_ok = threading.local()
    return drv


@pytest.fixture(scope='module')
def guest(vm_launcher, socket_dir):
    return vm_launcher.start_nova_guest(
        'e2e-quiesce', 'qga', vm_fixtures.nova_hook_chain(socket_dir))


def _freeze_status(vm: vm_fixtures.Vm) -> str:
    reply = libvirt_qemu.qemuAgentCommand(
        vm.dom, json.dumps({'execute': 'guest-fsfreeze-status'}), 30, 0)
    return json.loads(reply)['return']


async def test_quiesce_freezes_and_thaws_through_the_standard_channel(
        guest, qga_driver, libvirtd, libvirt_provider, vm_launcher,
        e2e_timings):
    vm = guest.vm
    transport = transport_libvirt.LibvirtTransport(
        vm.name, libvirt_provider, vm.uuid,
        env_fixtures.poller_conf(libvirtd.uri))
    await vm_fixtures.wait_for_agent(transport, vm.started_at,
                                     diagnostics=vm_launcher.diagnostics(vm))
    assert vm.channel_state() == 'connected'
    image_meta = nova_domains.make_image_meta()
    assert not image_meta.properties.get('hw_qemu_guest_agent', False)
    ctx = nova_context.get_admin_context()

    started = time.monotonic()
    qga_driver.quiesce(ctx, guest.instance, image_meta)
    try:
        e2e_timings['nova_quiesce_freeze_s'] = time.monotonic() - started
        assert _freeze_status(vm) == 'frozen'
    finally:
        started = time.monotonic()
        qga_driver.unquiesce(ctx, guest.instance, image_meta)
        e2e_timings['nova_quiesce_thaw_s'] = time.monotonic() - started
    assert _freeze_status(vm) == 'thawed'


def test_no_agent_features_is_novas_own_refusal(guest, qga_driver):
    image_meta = nova_domains.make_image_meta()
    driver.CONF.set_override('nova_agent_features', [], group='qga')
    try:
        with pytest.raises(exception.QemuGuestAgentNotEnabled) as err:
            qga_driver.quiesce(nova_context.get_admin_context(),
                               guest.instance, image_meta)
    finally:
        driver.CONF.clear_override('nova_agent_features', group='qga')
    assert not isinstance(err.value, driver.AgentChannelUnusable)
    assert _freeze_status(guest.vm) == 'thawed'


def test_guest_without_an_agent_is_not_asked(vm_launcher, socket_dir,
                                             qga_driver, e2e_timings):
    """The port is never opened: Nova gets a NovaException, so
    ``_live_snapshot`` logs "Skipping quiescing instance" and takes the
    snapshot unquiesced.
    """
    silent = vm_launcher.start_nova_guest(
        'e2e-quiesce-noagent', 'noagent',
        vm_fixtures.nova_hook_chain(socket_dir), data_disk=False)
    state = silent.vm.channel_state()
    started = time.monotonic()
    with pytest.raises(exception.NovaException) as err:
        qga_driver.quiesce(nova_context.get_admin_context(), silent.instance,
                           nova_domains.make_image_meta())
    e2e_timings['nova_quiesce_refused_no_agent_s'] = (
        time.monotonic() - started)
    if state == 'disconnected':
        # libvirt knows the guest has not opened the port: not asked.
        assert isinstance(err.value, driver.AgentChannelUnusable)
        assert 'no agent in the guest has org.qemu.guest_agent.0 open' in \
            str(err.value)
    else:
        # No state reported: libvirt's guest-sync gets no answer.
        assert isinstance(err.value, exception.InstanceQuiesceFailed)
