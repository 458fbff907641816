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

"""A real nova-compute with ``QgaLibvirtDriver``, driven through Nova's API.

The cloud is :func:`tests.fixtures.nova_cloud.nova_cloud` (its docstring
lists every process): Nova 34's nova-api, nova-conductor, nova-scheduler and
nova-compute, Placement and Glance 33, on PostgreSQL and a RabbitMQ vhost of
this module's own, nova-compute on the e2e suite's private libvirtd under
TCG.  The instance is booted with ``POST /servers`` from Glance images made
of the e2e guest (``tests/fixtures/build_guest_image.py``): the kernel
(``aki``) and the initramfs (``ari``) referenced by the root image's
``kernel_id`` and ``ramdisk_id``, the ext4 data disk as the root disk
(``raw``, mounted by the guest at /mnt), as Nova boots an AMI-style image.
The images have no ``hw_qemu_guest_agent``.  Its two ``qemu-ga`` run on the
standard channel (unrestricted) and on the monitor channel (read-only).

What the tests show, in order, on one instance:

* ``POST /servers`` (``"networks": "none"``) reaches ACTIVE; the live domain
  has both channels, each exactly once; both agents answer;
* ``qga-probe --all`` and ``qga-polling --once`` (libvirt discovery) see
  it by its Nova uuid and name: ``ok`` with its meters, ``guest.agent.up``
  1 with its filesystem samples;
* ``createImage``: Nova's live snapshot, quiesced through the standard
  channel.  The proof is in the snapshot itself: ext4 clears
  ``needs_recovery`` in its superblock when it is frozen (``ext4_freeze``
  commits the journal), so the root filesystem in the uploaded image is
  clean only if the guest was frozen when the disk was copied; and
  nova-compute logs no "Skipping quiescing".  The standard agent is asked
  ``guest-fsfreeze-status`` in a loop meanwhile; how many replies said
  ``frozen`` goes into ``e2e_timings`` (informative: it depends on speed).
  With ``[qga] nova_agent_features`` empty (nova-compute restarted), Nova
  does what it did before: "Skipping quiescing instance", no ``frozen``
  reply, and a snapshot whose filesystem needs recovery;
* hard reboot and stop/start keep both channels;
* delete removes the domain and its monitor socket; neither ``qga-probe
  --all`` nor ``qga-polling`` lists it any more;
* a second server, from an image with ``hw_qemu_guest_agent=yes`` (Nova
  adds the standard channel itself), still has exactly one of each channel.

Not real here: Keystone (nova-api's paste pipeline runs without
``authtoken``: Nova 34 no longer has ``noauth2``; the test sends the
identity headers the middleware would set).  Neutron is real (Neutron 29,
ML2 without agents; the instances have no port): Nova's calls to it
(the ports of the instance on show, reboot, start and delete) are answered
200, and the server shows no addresses.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from lxml import etree
import pytest

from ceilometer_qga.guest import STANDARD_CHANNEL
from ceilometer_qga.qga import transport_socket
from tests.fixtures import nova_cloud as cloud_fixtures
from tests.fixtures import vm as vm_fixtures

pytestmark = pytest.mark.e2e

MONITOR_CHANNEL = vm_fixtures.MONITOR_CHANNEL
PROBE = os.path.join(os.path.dirname(sys.executable), 'qga-probe')
POLLING = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
#: generous bounds for a TCG guest on 2 shared cores
BOOT_DEADLINE = 300.0
ACTION_DEADLINE = 300.0


@pytest.fixture(scope='module')
def cloud(libvirtd, rabbit_vhost, socket_dir, e2e_timings):
    with cloud_fixtures.nova_cloud(rabbit_vhost, libvirtd.uri, socket_dir) as started:
        e2e_timings.update(started.timings)
        yield started


@pytest.fixture(scope='module')
def images(cloud, guest_image, e2e_timings):
    """The guest as Glance images: kernel, ramdisk, and the root image."""
    started = time.monotonic()
    glance = cloud.glance
    kernel = glance.create_image('qga-e2e-kernel', guest_image.kernel, 'aki', 'aki')
    ramdisk = glance.create_image('qga-e2e-ramdisk', guest_image.initrd, 'ari', 'ari')
    # The busybox init handles no ACPI power button: Nova's clean shutdown
    # (os-stop) would wait its whole 60 s before destroying the domain.
    properties = {'kernel_id': kernel, 'ramdisk_id': ramdisk,
                  'os_command_line': guest_image.cmdline('qga'),
                  'os_shutdown_timeout': '3'}
    root = glance.create_image('qga-e2e-root', guest_image.data_disk, 'raw', 'bare',
                               **properties)
    # The same guest with the image property that makes Nova add the
    # standard channel itself.
    with_agent = glance.create_image('qga-e2e-root-agent', guest_image.data_disk, 'raw',
                                     'bare', hw_qemu_guest_agent='yes', **properties)
    for image in (kernel, ramdisk, root, with_agent):
        glance.wait_active(image, 120)
    assert 'hw_qemu_guest_agent' not in glance.image(root)
    e2e_timings['nova_cloud_images_s'] = time.monotonic() - started
    return {'kernel': kernel, 'ramdisk': ramdisk, 'root': root, 'with_agent': with_agent}


@pytest.fixture(scope='module')
def flavor(cloud):
    body = {'flavor': {'name': 'qga.e2e', 'id': 'qga-e2e', 'ram': 128, 'vcpus': 1,
                       'disk': 0}}
    return cloud.compute.request('POST', '/flavors', body)[2]['flavor']['id']


class Server:
    """The instance the tests share (module docstring)."""

    def __init__(self, cloud, libvirtd, server: dict, boot_s: float) -> None:
        self.cloud = cloud
        self.libvirtd = libvirtd
        self.id = server['id']
        self.name = server['OS-EXT-SRV-ATTR:instance_name']
        self.display_name = server['name']
        self.boot_s = boot_s

    def domain(self):
        import libvirt
        conn = libvirt.open(self.libvirtd.uri)
        try:
            return conn.lookupByUUIDString(self.id).XMLDesc(0)
        finally:
            conn.close()

    def channels(self) -> list[tuple[str, str | None, str | None]]:
        """(target name, source path, state) of every unix channel, live XML."""
        root = etree.fromstring(self.domain().encode())
        found = []
        for chan in root.iterfind('./devices/channel'):
            target, source = chan.find('target'), chan.find('source')
            if chan.get('type') == 'unix' and target is not None:
                found.append((target.get('name'),
                              source.get('path') if source is not None else None,
                              target.get('state')))
        return found

    def monitor_socket(self) -> str:
        paths = [path for name, path, _state in self.channels() if name == MONITOR_CHANNEL]
        assert len(paths) == 1, self.channels()
        return paths[0]

    def console(self) -> str:
        path = os.path.join(self.cloud.instances_path, self.id, 'console.log')
        try:
            with open(path, errors='replace') as f:
                return f.read()[-3000:]
        except OSError as exc:
            return '(no console log: %s)' % exc


def _boot(cloud, libvirtd, name: str, image: str, flavor: str) -> Server:
    """``POST /servers`` without networks; the server once ACTIVE."""
    started = time.monotonic()
    body = {'server': {'name': name, 'imageRef': image, 'flavorRef': flavor,
                       'networks': 'none'}}
    created = cloud.compute.request('POST', '/servers', body)[2]['server']
    try:
        active = cloud.compute.wait_for_server(created['id'], 'ACTIVE', BOOT_DEADLINE)
    except (AssertionError, TimeoutError) as exc:
        pytest.fail('%s\n%s' % (exc, cloud.diagnostics()), pytrace=False)
    return Server(cloud, libvirtd, active, time.monotonic() - started)


@pytest.fixture(scope='module')
def server(cloud, images, flavor, libvirtd, e2e_timings):
    booted = _boot(cloud, libvirtd, 'qga-nova-e2e', images['root'], flavor)
    e2e_timings['nova_boot_active_s'] = booted.boot_s
    return booted


def _probe_conf(tmp_path, libvirtd) -> str:
    path = os.path.join(str(tmp_path), 'probe.conf')
    with open(path, 'w') as f:
        f.write('[qga_polling]\ndiscovery = libvirt\ntransport = auto\n'
                'command_timeout = 5\n[libvirt_discovery]\nuri = %s\n' % libvirtd.uri)
    return path


def _poll_once(tmp_path, libvirtd) -> list[dict]:
    """``qga-polling --once`` (libvirt discovery, file publisher); its samples."""
    base = os.path.join(str(tmp_path), 'polling-%d' % time.time_ns())
    with open(base + '.conf', 'w') as f:
        f.write('[DEFAULT]\nlog_file = %s.log\n[qga_polling]\ndiscovery = libvirt\n'
                'transport = auto\ncommand_timeout = 5\npublishers = file://%s.jsonl\n'
                '[libvirt_discovery]\nuri = %s\n' % (base, base, libvirtd.uri))
    proc = subprocess.run([POLLING, '--config-file', base + '.conf', '--once'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        with open(base + '.jsonl') as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _probe_all(conf: str) -> dict:
    proc = subprocess.run([PROBE, '--config-file', conf, '--all', '--json'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return json.loads(proc.stdout)


async def _ping(path: str, label: str) -> float:
    qga = transport_socket.SocketTransport(label, path, 5.0, 1 << 20)
    try:
        return await vm_fixtures.wait_for_agent(qga, time.monotonic(), BOOT_DEADLINE)
    finally:
        await qga.close()


def _wait_agents(server: Server) -> None:
    """Both agents answer: the monitor one on its socket, the standard one
    through libvirt (``guest-ping`` on the channel libvirt owns).
    """
    import libvirt
    import libvirt_qemu
    asyncio.run(_ping(server.monitor_socket(), server.id))
    deadline = time.monotonic() + BOOT_DEADLINE
    conn = libvirt.open(server.libvirtd.uri)
    try:
        dom = conn.lookupByUUIDString(server.id)
        while True:
            try:
                reply = libvirt_qemu.qemuAgentCommand(
                    dom, json.dumps({'execute': 'guest-ping'}), 5, 0)
                assert json.loads(reply) == {'return': {}}
                return
            except libvirt.libvirtError as exc:
                if time.monotonic() >= deadline:
                    raise AssertionError('standard agent of %s: %s\n%s'
                                         % (server.id, exc, server.console()))
            time.sleep(0.5)
    finally:
        conn.close()


def _assert_channels(server: Server) -> None:
    names = sorted(name for name, _path, _state in server.channels())
    assert names == sorted([STANDARD_CHANNEL, MONITOR_CHANNEL]), server.channels()


def test_boot_through_the_api_gives_both_channels_and_agents(server, e2e_timings):
    _assert_channels(server)
    started = time.monotonic()
    _wait_agents(server)
    e2e_timings['nova_agents_answer_s'] = time.monotonic() - started


def test_probe_all_lists_the_instance_by_nova_uuid(server, libvirtd, tmp_path):
    found = _probe_all(_probe_conf(tmp_path, libvirtd))
    rows = {row['instance_id']: row for row in found['guests']}
    assert server.id in rows, json.dumps(found, indent=1)
    row = rows[server.id]
    assert row['name'] == server.name
    assert row['state'] == 'ok', row
    assert row['meters']['native'] > 0, row


def test_poller_samples_the_instance_by_nova_uuid(server, libvirtd, tmp_path):
    samples = [s for s in _poll_once(tmp_path, libvirtd)
               if s['resource_id'].startswith(server.id)]
    up = [s for s in samples if s['counter_name'] == 'guest.agent.up']
    assert len(up) == 1, samples
    assert up[0]['resource_id'] == server.id
    assert up[0]['counter_volume'] == 1
    assert up[0]['resource_metadata']['name'] == server.name
    assert up[0]['resource_metadata']['display_name'] == server.display_name
    assert any(s['counter_name'] == 'guest.filesystem.used' for s in samples), samples


def _superblock(cloud, image_id: str, workdir: str) -> dict[str, str]:
    """``dumpe2fs -h`` of the root filesystem in a Glance image."""
    status, _headers, _body = cloud.glance.request('GET', '/v2/images/%s' % image_id)
    image = cloud.glance.image(image_id)
    downloaded = os.path.join(workdir, image_id + '.' + image['disk_format'])
    req = cloud.glance.endpoint + '/v2/images/%s/file' % image_id
    import urllib.request
    with urllib.request.urlopen(urllib.request.Request(
            req, headers=cloud.glance.headers), timeout=120) as resp, \
            open(downloaded, 'wb') as out:
        while chunk := resp.read(1 << 20):
            out.write(chunk)
    raw = os.path.join(workdir, image_id + '.raw')
    subprocess.run(['qemu-img', 'convert', '-O', 'raw', downloaded, raw], check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run(['dumpe2fs', '-h', raw], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(':')
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _snapshot(server: Server, name: str) -> tuple[str, float]:
    """``createImage``; returns the image id once it is active, and seconds."""
    started = time.monotonic()
    body = server.cloud.compute.action(server.id, {'createImage': {'name': name}})[2]
    image_id = body['image_id']
    server.cloud.glance.wait_active(image_id, ACTION_DEADLINE)
    server.cloud.compute.wait_for_server(server.id, 'ACTIVE', ACTION_DEADLINE)
    return image_id, time.monotonic() - started


class _FreezeWatch:
    """``guest-fsfreeze-status`` of the standard agent, through libvirt, in
    a loop until stopped: what the agent answered while Nova snapshotted.

    Informative only (a reply lands inside the frozen window or not,
    depending on the machine's speed): the assertions are on the snapshot.
    """

    def __init__(self, server: Server) -> None:
        import threading
        self.server = server
        self.replies: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import libvirt
        import libvirt_qemu
        conn = libvirt.open(self.server.libvirtd.uri)
        try:
            dom = conn.lookupByUUIDString(self.server.id)
            while not self._stop.is_set():
                try:
                    reply = libvirt_qemu.qemuAgentCommand(
                        dom, json.dumps({'execute': 'guest-fsfreeze-status'}), 10, 0)
                    self.replies.append(json.loads(reply)['return'])
                except libvirt.libvirtError as exc:
                    self.replies.append('error: %s' % exc)
                self._stop.wait(0.05)
        finally:
            conn.close()

    def __enter__(self) -> '_FreezeWatch':
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(60)


def test_create_image_is_quiesced_through_the_standard_channel(server, tmp_path,
                                                               e2e_timings):
    cloud = server.cloud
    with _FreezeWatch(server) as watch:
        image_id, seconds = _snapshot(server, 'qga-e2e-quiesced')
    e2e_timings['nova_snapshot_quiesced_s'] = seconds
    e2e_timings['nova_snapshot_frozen_replies'] = watch.replies.count('frozen')
    log = cloud.log('nova-compute')
    assert 'Beginning live snapshot process' in log, log[-3000:]
    assert 'Skipping quiescing' not in log, log[-3000:]
    assert 'Quiescing instance not available' not in log, log[-3000:]
    fs = _superblock(cloud, image_id, str(tmp_path))
    assert 'has_journal' in fs['Filesystem features']
    # ext4_freeze flushed the journal and cleared needs_recovery.
    assert 'needs_recovery' not in fs['Filesystem features'], fs
    # The guest was thawed: its agent answers and /mnt is writable again
    # (guest-fsfreeze-status through the monitor agent's read-only list).
    assert asyncio.run(_freeze_status(server)) == 'thawed'


async def _freeze_status(server: Server) -> str:
    qga = transport_socket.SocketTransport(server.id, server.monitor_socket(), 10.0, 1 << 20)
    try:
        return await qga.execute('guest-fsfreeze-status')
    finally:
        await qga.close()


def test_hard_reboot_keeps_both_channels(server, e2e_timings):
    started = time.monotonic()
    server.cloud.compute.action(server.id, {'reboot': {'type': 'HARD'}})
    server.cloud.compute.wait_for_server(server.id, 'ACTIVE', ACTION_DEADLINE)
    _assert_channels(server)
    _wait_agents(server)
    e2e_timings['nova_hard_reboot_agents_s'] = time.monotonic() - started


def test_stop_start_keeps_both_channels(server, e2e_timings):
    started = time.monotonic()
    server.cloud.compute.action(server.id, {'os-stop': None})
    server.cloud.compute.wait_for_server(server.id, 'SHUTOFF', ACTION_DEADLINE)
    _assert_channels(server)
    server.cloud.compute.action(server.id, {'os-start': None})
    server.cloud.compute.wait_for_server(server.id, 'ACTIVE', ACTION_DEADLINE)
    _assert_channels(server)
    _wait_agents(server)
    e2e_timings['nova_stop_start_agents_s'] = time.monotonic() - started


def test_without_agent_features_nova_skips_quiescing(server, tmp_path, e2e_timings):
    """``[qga] nova_agent_features`` empty: Nova's own behaviour, an INFO
    line and a snapshot of a filesystem that was not frozen.
    """
    cloud = server.cloud
    e2e_timings['nova_compute_restart_s'] = cloud.restart_compute(
        '[qga]\nnova_agent_features =\n')
    with _FreezeWatch(server) as watch:
        image_id, seconds = _snapshot(server, 'qga-e2e-unquiesced')
    e2e_timings['nova_snapshot_unquiesced_s'] = seconds
    assert watch.replies and 'frozen' not in watch.replies, watch.replies
    log = cloud.log('nova-compute')
    assert ('Skipping quiescing instance: QEMU guest agent is not enabled' in log), \
        log[-3000:]
    fs = _superblock(cloud, image_id, str(tmp_path))
    assert 'needs_recovery' in fs['Filesystem features'], fs


def test_delete_removes_the_domain_socket_and_poller_entry(
        server, libvirtd, tmp_path,
        e2e_timings):
    import libvirt
    socket_path = server.monitor_socket()
    assert os.path.exists(socket_path)
    # No port: Neutron lists none for the instance.
    assert server.cloud.compute.server(server.id)['addresses'] == {}
    started = time.monotonic()
    server.cloud.compute.request('DELETE', '/servers/%s' % server.id)
    server.cloud.compute.wait_gone(server.id, ACTION_DEADLINE)
    e2e_timings['nova_delete_s'] = time.monotonic() - started
    conn = libvirt.open(libvirtd.uri)
    try:
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByUUIDString(server.id)
    finally:
        conn.close()
    assert not os.path.exists(socket_path)
    found = _probe_all(_probe_conf(tmp_path, libvirtd))
    assert server.id not in {row['instance_id'] for row in found['guests']}
    assert not [s for s in _poll_once(tmp_path, libvirtd)
                if s['resource_id'].startswith(server.id)]
    # Nova's calls to the real Neutron (the instance's ports on show, reboot,
    # start, delete) were all answered, by uwsgi's request log.
    requests = [line for line in server.cloud.log('neutron-api').splitlines()
                if ' /v2.0/' in line and '=> generated' in line]
    assert any(' GET /v2.0/ports' in line for line in requests), requests
    assert [line for line in requests if '(HTTP/1.1 200)' not in line] == []
    for name in ('nova-api', 'nova-compute'):
        assert [line for line in server.cloud.log(name).splitlines()
                if ' ERROR ' in line and 'neutron' in line.lower()] == [], name


def test_image_with_hw_qemu_guest_agent_still_has_one_standard_channel(
        cloud, images, flavor, libvirtd, e2e_timings):
    """Nova adds the standard channel itself; ``agent_channel`` keeps it."""
    booted = _boot(cloud, libvirtd, 'qga-nova-e2e-agent', images['with_agent'], flavor)
    e2e_timings['nova_boot_hw_qemu_guest_agent_s'] = booted.boot_s
    try:
        _assert_channels(booted)
        _wait_agents(booted)
    finally:
        cloud.compute.request('DELETE', '/servers/%s' % booted.id)
        cloud.compute.wait_gone(booted.id, ACTION_DEADLINE)
