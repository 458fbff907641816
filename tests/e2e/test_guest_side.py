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

"""The guest side (guest/) in a real Debian 12 cloud guest, both routes.

Real parts only: a Debian 12 system built by ``tests/fixtures/build_debian_image.py``
with ``mmdebstrap`` from Debian's packages (cloud kernel, systemd, udev,
cloud-init 22.4, qemu-guest-agent 7.2), booted under TCG by the private
libvirtd with domain XML from Nova's config objects run through our
``nova_qga`` hook chain (which adds the ``org.openstack.monitor.0`` port),
and the ``qga-probe`` console script as a process.

Three guests, booted together (one boot per route):

* ``cloudinit``: the stock image (nothing of ours) and a config drive whose
  ``openstack/latest/vendor_data.json`` is what Nova's ``StaticJSON``
  vendor data provider serves from ``guest/cloud-init/vendor_data.json``
  (``[api] vendordata_jsonfile_path``); cloud-init installs the agent;
* ``userdata``: the stock image and a config drive whose
  ``openstack/latest/user_data`` is ``guest/cloud-init/qga-monitor.yaml``
  as given to ``openstack server create --user-data`` (the vendor data is
  Nova's empty default); cloud-init installs the agent;
* ``element``: the image ``disk-image-create baremetal debian-minimal
  qga-monitor`` built (``tests/fixtures/build_dib_image.py``:
  diskimage-builder from PyPI with our element), booted with its own
  kernel and initramfs; no cloud-init, no config drive.

The test reaches into the guest only through the standard channel
(``guest-exec`` through libvirt, as a test, never as the poller) to restart
the monitor unit and to reboot.

Timings go into ``e2e_timings``: ``guest_<route>_monitor_up_s`` (QEMU start
to the monitor agent's first answer), ``guest_<route>_first_sample_s``
(QEMU start to ``qga-probe`` reading every meter), image build figures.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
from typing import Any
import uuid as uuid_mod

import libvirt
import libvirt_qemu
from nova.virt.libvirt import config as vconfig
from oslo_config import cfg
import oslo_messaging
import pytest

from ceilometer_qga.guest import STANDARD_CHANNEL
from ceilometer_qga import libvirt_events
from ceilometer_qga.qga import policy
from tests.fixtures.agents import qga_standin
from tests.fixtures import build_debian_image
from tests.fixtures import build_dib_image
from tests.fixtures import nova_domain as nova_domains
from tests.fixtures import processes as processes_mod
from tests.fixtures import rabbit
from tests.fixtures import vm as vm_fixtures
from tools import gen_guest_files

BOOT_DEADLINE = 900.0
#: per test: the first one's setup builds both images when they are not
#: cached (a few minutes) and boots every route's guest (BOOT_DEADLINE)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(BOOT_DEADLINE + 900)]

PROBE = os.path.join(os.path.dirname(sys.executable), 'qga-probe')
POLLING = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
MONITOR_CHANNEL = vm_fixtures.MONITOR_CHANNEL
VENDOR_DATA = os.path.join(gen_guest_files.GUEST, 'cloud-init', 'vendor_data.json')
USER_DATA = os.path.join(gen_guest_files.GUEST, 'cloud-init', 'qga-monitor.yaml')
ROUTES = ('cloudinit', 'userdata', 'element')
#: the routes whose guests cloud-init sets up from a config drive
CONFIG_DRIVE_ROUTES = ('cloudinit', 'userdata')


@pytest.fixture(scope='session')
def debian_image(libvirtd: Any, e2e_timings: dict[str, float]) -> build_debian_image.DebianImage:
    image = build_debian_image.build()
    e2e_timings['debian_image_build_s'] = image.manifest['build_seconds']
    e2e_timings['debian_image_qcow2_mib'] = image.manifest['sizes']['stock.qcow2'] / 2**20
    return image


@pytest.fixture(scope='session')
def dib_image(libvirtd: Any, e2e_timings: dict[str, float]) -> build_dib_image.DibImage:
    image = build_dib_image.build()
    e2e_timings['dib_image_build_s'] = image.manifest['build_seconds']
    e2e_timings['dib_image_qcow2_mib'] = image.manifest['sizes'][build_dib_image.IMAGE] / 2**20
    return image


def nova_vendor_data() -> dict[str, Any]:
    """What Nova's StaticJSON provider serves with ``vendordata_jsonfile_path``
    pointing at our file (Nova's own class reads it).
    """
    from nova.api.metadata import vendordata_json
    import nova.conf
    conf = nova.conf.CONF
    conf([], project='nova', default_config_files=[], default_config_dirs=[])
    conf.set_override('vendordata_providers', ['StaticJSON'], group='api')
    conf.set_override('vendordata_jsonfile_path', VENDOR_DATA, group='api')
    try:
        return vendordata_json.JsonFileVendorData().get()
    finally:
        conf.clear_override('vendordata_providers', group='api')
        conf.clear_override('vendordata_jsonfile_path', group='api')
        conf.reset()


def config_drive(path: str, uuid: str, name: str, user_data: bytes | None = None,
                 vendor_data: dict[str, Any] | None = None) -> None:
    """An OpenStack config drive (iso9660, label config-2) as Nova writes it:
    ``user_data`` only when the instance has user data, ``vendor_data.json``
    always (``{}`` without a vendor data file).
    """
    with tempfile.TemporaryDirectory() as tree:
        latest = os.path.join(tree, 'openstack', 'latest')
        os.makedirs(latest)
        with open(os.path.join(latest, 'meta_data.json'), 'w') as f:
            json.dump({'uuid': uuid, 'name': name, 'hostname': name,
                       'launch_index': 0, 'availability_zone': 'nova'}, f)
        with open(os.path.join(latest, 'vendor_data.json'), 'w') as f:
            json.dump(vendor_data or {}, f)
        if user_data is not None:
            with open(os.path.join(latest, 'user_data'), 'wb') as f:
                f.write(user_data)
        subprocess.run(['genisoimage', '-quiet', '-o', path, '-ldots', '-allow-lowercase',
                        '-allow-multidot', '-l', '-V', 'config-2', '-r', '-J', tree],
                       check=True, capture_output=True)


def start_debian(launcher: vm_fixtures.VmLauncher, socket_dir: str,
                 image: build_debian_image.DebianImage, dib: build_dib_image.DibImage,
                 route: str) -> vm_fixtures.Vm:
    uuid = str(uuid_mod.uuid4())
    instance = vm_fixtures.nova_instance(uuid, 'guest-' + route, memory_mib=512)
    base = os.path.join(launcher.workdir, instance.name)
    overlay = base + '.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
                    dib.disk if route == 'element' else image.stock, overlay],
                   check=True)
    boot = dib if route == 'element' else image
    guest = vm_fixtures.nova_guest_config(
        instance, image=types.SimpleNamespace(kernel=boot.kernel, initrd=boot.initrd),
        cmdline=boot.cmdline, serial_log=base + '.console')
    disk = vconfig.LibvirtConfigGuestDisk()
    disk.source_type, disk.source_path = 'file', overlay
    disk.driver_name, disk.driver_format = 'qemu', 'qcow2'
    disk.target_dev, disk.target_bus = 'vda', 'virtio'
    guest.add_device(disk)
    if route in CONFIG_DRIVE_ROUTES:
        iso = base + '.config'
        if route == 'cloudinit':
            config_drive(iso, uuid, instance.name, vendor_data=nova_vendor_data())
        else:
            with open(USER_DATA, 'rb') as f:
                config_drive(iso, uuid, instance.name, user_data=f.read())
        cdrom = vconfig.LibvirtConfigGuestDisk()
        cdrom.source_type, cdrom.source_path = 'file', iso
        cdrom.source_device = 'cdrom'
        cdrom.driver_name, cdrom.driver_format = 'qemu', 'raw'
        cdrom.target_dev, cdrom.target_bus = 'hdd', 'ide'
        cdrom.readonly = True
        guest.add_device(cdrom)
    chain = vm_fixtures.nova_hook_chain(socket_dir)
    xml = chain.apply(guest.to_xml(), instance, nova_domains.make_image_meta())
    monitor = vm_fixtures.channel_paths(xml).get(MONITOR_CHANNEL)
    assert monitor, xml
    return launcher.start(instance.name, uuid, xml, base + '.console', monitor)


def wait_monitor(vm: vm_fixtures.Vm, launcher: vm_fixtures.VmLauncher,
                 deadline: float = BOOT_DEADLINE) -> float:
    """Poll the monitor socket until the agent answers; seconds since now."""
    started = time.monotonic()
    while not qga_standin.answers(vm.monitor_socket, timeout=5.0):
        if time.monotonic() - started > deadline:
            raise AssertionError('monitor agent of %s never answered\n%s'
                                 % (vm.name, launcher.diagnostics(vm)))
        time.sleep(0.5)
    return time.monotonic() - started


def standard(vm: vm_fixtures.Vm, command: str, arguments: dict | None = None,
             timeout: int = 60) -> Any:
    """One command on the standard channel through libvirt."""
    msg = {'execute': command}
    if arguments is not None:
        msg['arguments'] = arguments
    return json.loads(libvirt_qemu.qemuAgentCommand(vm.dom, json.dumps(msg), timeout, 0))['return']


def guest_sh(vm: vm_fixtures.Vm, script: str, wait: bool = True) -> tuple[int, str]:
    """Run a shell script in the guest with the standard agent's guest-exec."""
    pid = standard(vm, 'guest-exec', {'path': '/bin/sh', 'arg': ['-c', script],
                                      'capture-output': True})['pid']
    if not wait:
        return 0, ''
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = standard(vm, 'guest-exec-status', {'pid': pid})
        if status['exited']:
            out = base64.b64decode(status.get('out-data', '')).decode()
            err = base64.b64decode(status.get('err-data', '')).decode()
            return status['exitcode'], out + err
        time.sleep(0.3)
    raise AssertionError('guest-exec of %r did not finish' % script)


def wait_standard(vm: vm_fixtures.Vm, deadline: float = BOOT_DEADLINE) -> None:
    started = time.monotonic()
    while True:
        try:
            standard(vm, 'guest-ping', timeout=5)
            return
        except libvirt.libvirtError:
            if time.monotonic() - started > deadline:
                raise
            time.sleep(1)


def probe(conf: str, vm: vm_fixtures.Vm) -> dict[str, Any]:
    proc = subprocess.run([PROBE, '--config-file', conf, vm.uuid, '--json'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def meter_names(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m['meter'], m.get('item') or '') for m in report['meters']}


@pytest.fixture(scope='module')
def probe_conf(libvirtd: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp('guestside') / 'auto.conf')
    with open(path, 'w') as f:
        f.write('[DEFAULT]\nhost = e2e-compute-1\n'
                '[qga_polling]\ndiscovery = libvirt\ntransport = auto\n'
                'command_timeout = 10\nguest_budget = 60\n'
                '[libvirt_discovery]\nuri = %s\n' % libvirtd.uri)
    return path


@pytest.fixture(scope='module')
def guests(vm_launcher: vm_fixtures.VmLauncher, socket_dir: str, debian_image: Any,
           dib_image: Any, probe_conf: str,
           e2e_timings: dict[str, float]) -> dict[str, vm_fixtures.Vm]:
    """Every route's guest, booted together; returned once each monitor
    agent answers (by itself: nothing is sent to the guest before).
    """
    vms = {route: start_debian(vm_launcher, socket_dir, debian_image, dib_image, route)
           for route in ROUTES}
    # Every guest's socket in turn, so each one's time is its own and not
    # that of the guest waited for before it.
    waiting = dict(vms)
    while waiting:
        for route, vm in list(waiting.items()):
            if time.monotonic() - vm.started_at > BOOT_DEADLINE:
                raise AssertionError('monitor agent of %s never answered\n%s'
                                     % (vm.name, vm_launcher.diagnostics(vm)))
            if not qga_standin.answers(vm.monitor_socket, timeout=5.0):
                continue
            e2e_timings['guest_%s_monitor_up_s' % route] = time.monotonic() - vm.started_at
            report = probe(probe_conf, vm)
            e2e_timings['guest_%s_first_sample_s' % route] = time.monotonic() - vm.started_at
            assert report['transport'] == 'socket', report
            del waiting[route]
        time.sleep(0.5)
    for vm in vms.values():
        wait_standard(vm)
    return vms


@pytest.mark.parametrize('route', ROUTES)
def test_monitor_channel_is_read_only(guests, route, e2e_timings):
    """guest-info lists exactly the allow-list as enabled; write commands
    are refused; no file can be opened for writing, nor /etc/shadow read.
    """
    vm = guests[route]
    with qga_standin.RawClient(vm.monitor_socket, timeout=30) as client:
        info = client.call('guest-info')
        enabled = {c['name'] for c in info['supported_commands'] if c['enabled']}
        known = {c['name'] for c in info['supported_commands']}
        assert enabled == known & policy.READ_ONLY_COMMANDS, sorted(enabled)
        for command, args in (('guest-file-write', {'handle': 1, 'buf-b64': ''}),
                              ('guest-exec', {'path': '/bin/true'}),
                              ('guest-shutdown', {'mode': 'reboot'})):
            client.send(command, args)
            reply = client.reply()
            assert 'disabled' in reply.get('error', {}).get('desc', ''), (command, reply)
        opens = [('/etc/shadow', mode) for mode in ('r', 'w', 'a', 'w+')]
        opens += [('/var/tmp/qga-monitor-new', mode) for mode in ('w', 'a', 'w+')]
        opens += [('/tmp/qga-monitor-new', mode) for mode in ('w', 'a', 'w+')]
        for path, mode in opens:
            client.send('guest-file-open', {'path': path, 'mode': mode})
            reply = client.reply()
            desc = reply.get('error', {}).get('desc', '')
            assert 'Permission denied' in desc or 'Read-only file system' in desc, \
                (path, mode, reply)
    code, out = guest_sh(vm, 'ls -l /etc/shadow /var/tmp/qga-monitor-new '
                             '/tmp/qga-monitor-new 2>&1; id qga-monitor; '
                             'ls -lL /dev/virtio-ports/org.openstack.monitor.0; '
                             'systemctl show -p User,ActiveState,TimeoutStopUSec '
                             'qga-monitor.service')
    for path in ('/var/tmp/qga-monitor-new', '/tmp/qga-monitor-new'):
        assert "'%s': No such file" % path in out, out
    assert ' root shadow ' in out and 'crw-rw---- 1 root qga-monitor' in out, out
    assert 'User=qga-monitor' in out and 'ActiveState=active' in out, out
    assert 'TimeoutStopUSec=5s' in out, out
    e2e_timings['guest_%s_monitor_enabled' % route] = len(enabled)
    print('\n%s monitor channel enabled: %s\ndisabled: %s'
          % (route, ','.join(sorted(enabled)), ','.join(sorted(known - enabled))))


@pytest.mark.parametrize('route', ROUTES)
def test_standard_channel_still_freezes(guests, route):
    """Nova's quiesce needs guest-fsfreeze-freeze/thaw on the standard
    channel; the monitor agent changes nothing there.
    """
    vm = guests[route]
    info = standard(vm, 'guest-info')
    enabled = {c['name'] for c in info['supported_commands'] if c['enabled']}
    assert {'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw', 'guest-exec'} <= enabled
    print('\n%s standard channel disabled: %s' % (route, ','.join(sorted(
        c['name'] for c in info['supported_commands'] if not c['enabled']))))
    try:
        assert standard(vm, 'guest-fsfreeze-freeze') >= 1
        assert standard(vm, 'guest-fsfreeze-status') == 'frozen'
    finally:
        standard(vm, 'guest-fsfreeze-thaw')
    assert standard(vm, 'guest-fsfreeze-status') == 'thawed'


@pytest.mark.parametrize('route', ROUTES)
def test_auto_falls_back_while_the_monitor_agent_is_down_and_returns(
        guests, route, probe_conf):
    """transport = auto: the dedicated channel when its agent is up; the
    standard channel through libvirt while the unit is stopped (qga-probe
    says so); every meter again after ``systemctl restart``.
    """
    vm = guests[route]
    before = probe(probe_conf, vm)
    assert (before['transport'], before['channel']) == ('socket', MONITOR_CHANNEL)
    code, out = guest_sh(vm, 'systemctl stop qga-monitor.service')
    assert code == 0, out
    down = probe(probe_conf, vm)
    assert (down['transport'], down['channel']) == ('libvirt', STANDARD_CHANNEL), down
    text = subprocess.run([PROBE, '--config-file', probe_conf, vm.uuid],
                          capture_output=True, text=True, timeout=300).stdout
    assert 'Channel: %s, through libvirt' % STANDARD_CHANNEL in text, text
    code, out = guest_sh(vm, 'systemctl restart qga-monitor.service')
    assert code == 0, out
    wait_monitor(vm, vm.launcher, 300)
    after = probe(probe_conf, vm)
    assert (after['transport'], after['channel']) == ('socket', MONITOR_CHANNEL)
    assert meter_names(after) == meter_names(before)


def test_every_meter_after_a_guest_reboot(guests, probe_conf, vm_launcher):
    """After a reboot the unit comes up by itself again (udev + BindsTo) on
    the cloud-init route, whose files cloud-init wrote on the first boot.
    """
    vm = guests['cloudinit']
    before = probe(probe_conf, vm)
    _, boot_id = guest_sh(vm, 'cat /proc/sys/kernel/random/boot_id')
    guest_sh(vm, 'sleep 1; systemctl reboot', wait=False)
    deadline = time.monotonic() + BOOT_DEADLINE
    while True:
        assert time.monotonic() < deadline, vm_launcher.diagnostics(vm)
        try:
            _, now = guest_sh(vm, 'cat /proc/sys/kernel/random/boot_id')
            if now != boot_id:
                break
        except libvirt.libvirtError:
            pass
        time.sleep(2)
    wait_monitor(vm, vm_launcher, BOOT_DEADLINE)
    after = probe(probe_conf, vm)
    assert (after['transport'], after['channel']) == ('socket', MONITOR_CHANNEL)
    assert meter_names(after) == meter_names(before)


class Bus:
    """oslo.messaging endpoint keeping our notifications with arrival times."""

    def __init__(self) -> None:
        self.items: list[tuple[float, dict]] = []
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        if event_type == 'guest_agent.state.change':
            with self.lock:
                self.items.append((time.monotonic(), payload))
        return oslo_messaging.NotificationResult.HANDLED

    def find(self, instance_id: str, state: str) -> list[tuple[float, dict]]:
        with self.lock:
            return [(t, p) for t, p in self.items
                    if p['instance_id'] == instance_id and p['state'] == state]


def test_killed_standard_agent_is_an_event_on_the_bus(
        guests, libvirtd, rabbit_vhost, processes, e2e_timings, tmp_path):
    """Debian's own qemu-ga on the standard channel killed with SIGKILL:
    ``qga-polling`` (libvirt discovery and transport, heartbeat off, a
    sweep every 600 s: only libvirt's AGENT_LIFECYCLE event can tell)
    sends ``not_connected`` on the bus, and its reason is that event.

    Debian's unit restarts the agent at once (``Restart=always``,
    ``RestartSec=0``: a restart within the disconnect hold is no "down"),
    so a runtime drop-in sets ``Restart=no`` first; a transient unit kills
    the agent, then removes the drop-in and starts the agent again, which
    comes back as ``ok``.  The kill as the test sees it is libvirt's
    agent-disconnected event on a connection of the test's own;
    ``std_kill_to_bus_s`` runs from there to the notification's arrival
    in an oslo.messaging listener.
    """
    vm = guests['userdata']
    wait_standard(vm)
    code, unit = guest_sh(vm, 'systemctl show -p Restart,RestartUSec qemu-guest-agent')
    assert code == 0 and 'Restart=always' in unit, unit
    dropin = '/run/systemd/system/qemu-guest-agent.service.d'
    code, out = guest_sh(vm, 'mkdir -p %s && printf "[Service]\\nRestart=no\\n" > %s/'
                             'no-restart.conf && systemctl daemon-reload && '
                             'systemctl show -p Restart qemu-guest-agent' % (dropin, dropin))
    assert code == 0 and 'Restart=no' in out, out

    url = rabbit.vhost_url(rabbit_vhost)
    amqp = 'amqp://guest:guest@%s:%d/%s' % (rabbit.HOST, rabbit.PORT, rabbit_vhost)
    conf = tmp_path / 'qga-polling.conf'
    conf.write_text(f"""[DEFAULT]
host = e2e-compute-1
transport_url = {url}
log_file = {tmp_path}/qga-polling.log
[qga_polling]
discovery = libvirt
transport = libvirt
publishers = file://{tmp_path}/samples.jsonl
interval = 600
heartbeat_interval = 0
command_timeout = 10
guest_budget = 60
[libvirt_discovery]
uri = {libvirtd.uri}
[guest_agent_events]
enabled = true
damping_interval = 0
""")
    bus = Bus()
    seen: list[tuple[float, str]] = []
    bus_conf = cfg.ConfigOpts()
    bus_conf([])
    transport = oslo_messaging.get_notification_transport(bus_conf, url=url)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications', exchange='ceilometer')],
        [bus], executor='threading', pool='qga-test-kill')
    listener.start()
    events = libvirt_events.LibvirtEvents(
        libvirtd.uri, 0, lambda obs: seen.extend(
            (time.monotonic(), o.state) for o in obs if o.instance_id == vm.uuid),
        lambda instance_id: True)
    events.start()
    try:
        processes_mod.wait_until(lambda: rabbit.queue_consumers(amqp, 'qga-test-kill') >= 1,
                                 30, 'the capture listener')
        processes.start([POLLING, '--config-file', str(conf)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes_mod.wait_until(lambda: bus.find(vm.uuid, 'ok'), 300,
                                 "the first sweep's state of the guest")
        first = bus.find(vm.uuid, 'ok')[0][1]
        # The sweep went through libvirt: the standard channel, although
        # the guest also has the monitor channel.
        assert first['channel'] == STANDARD_CHANNEL, first

        # After guest-exec-status has said the command exited.
        guest_sh(vm, "systemd-run --no-block --unit=qga-kill-test sh -c 'sleep 3; "
                     "systemctl kill --signal=KILL qemu-guest-agent; sleep 6; rm -r %s; "
                     "systemctl daemon-reload; systemctl start qemu-guest-agent'" % dropin)
        processes_mod.wait_until(lambda: ('not_connected' in [s for _t, s in seen]), 60,
                                 "libvirt's agent-disconnected event")
        killed_at = [t for t, s in seen if s == 'not_connected'][0]
        processes_mod.wait_until(lambda: bus.find(vm.uuid, 'not_connected'), 60,
                                 'the not_connected notification')
        arrived, down = bus.find(vm.uuid, 'not_connected')[0]
        assert down['liveness'] == 'down' and down['previous_state'] == 'ok', down
        # libvirt's event, not a heartbeat or a sweep.
        assert down['reason'] == 'libvirt: the agent closed %s' % STANDARD_CHANNEL, down
        assert down['channel'] == STANDARD_CHANNEL, down
        latency = arrived - killed_at
        e2e_timings['std_kill_to_bus_s'] = latency
        # Well within a default heartbeat (10 s) + command timeout (10 s).
        assert 0 <= latency < 20, latency
        # The transient unit starts the agent again: back up, at once too.
        processes_mod.wait_until(lambda: len(bus.find(vm.uuid, 'ok')) >= 2, 120,
                                 'the agent back up')
        assert bus.find(vm.uuid, 'ok')[1][1]['previous_state'] == 'not_connected'
    finally:
        events.close()
        listener.stop()
        listener.wait()
        transport.cleanup()
        wait_standard(vm, 120)
