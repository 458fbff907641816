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

"""The devstack plugin's socket permissions, against libvirt's real labelling.

A private libvirtd (``tests/fixtures/libvirt_env.py``) whose ``qemu.conf`` runs QEMU
as ``libvirt-qemu``, group ``kvm``, with ``dynamic_ownership = 1``: its DAC
driver labels the ``mode='bind'`` monitor socket it creates for a real TCG
VM.  The devstack plugin runs first (``tests/devstack/run.sh``, the same
stand-ins as ``tests/functional/test_devstack_plugin.py``, the same
``qemu.conf`` given to it as ``QGA_MONITOR_QEMU_CONF``): it makes the socket
directory and adds the non-root stack user to QEMU's group.  The VM's XML
comes from Nova's code through our hook chain with the plugin's
``[qga]`` values.  Then ``qga-polling --once``, from the venv the plugin
installed into, with the plugin's ``qga-polling.conf``, runs as the stack
user the way devstack's systemd unit runs it (``User=``, ``Group=
$LIBVIRT_GROUP``, the user's groups from ``/etc/group``: ``setpriv
--init-groups``) and must reach the guest's agent through that socket; the
same command without the user's groups must not.  Discovery is static (one
extra ``--config-file``): the private libvirtd's own socket is root's, so
libvirt discovery is not what this test is about.
"""

from __future__ import annotations

from collections.abc import Iterator
import configparser
import dataclasses
import grp
import json
import os
from pathlib import Path
import pwd
import shutil
import subprocess
import tempfile
import time
from typing import Any

import pytest

from tests.fixtures import install_envs
from tests.fixtures import libvirt_env
from tests.fixtures import vm as vm_fixtures
from tests.functional import test_devstack_plugin as plugin_tests

pytestmark = pytest.mark.e2e

QEMU_USER = 'libvirt-qemu'
QEMU_GROUP = 'kvm'
#: libvirt's qemu.conf, for libvirtd and for the plugin alike.
QEMU_CONF = '''# qemu.conf of tests/e2e/test_devstack_socket_permissions.py
user = "%s"
group = "%s"
dynamic_ownership = 1
remember_owner = 0
security_driver = "none"
stdio_handler = "logd"
''' % (QEMU_USER, QEMU_GROUP)


@pytest.fixture(scope='module')
def workdir() -> Iterator[Path]:
    """Short, and traversable by QEMU's user (pytest's tmp dirs are 0700)."""
    path = tempfile.mkdtemp(prefix='qgad', dir='/tmp')
    os.chmod(path, 0o755)
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='module')
def labelling_libvirtd(guest_image: Any, workdir: Path) -> Iterator[libvirt_env.LibvirtEnv]:
    env = libvirt_env.LibvirtEnv(qemu_conf=QEMU_CONF)
    # QEMU, as QEMU_USER, opens files libvirt writes under /var/lib/libvirt
    # (the private directory's lib/, bind-mounted there): both traversable.
    os.chmod(env.directory, 0o755)
    os.makedirs(os.path.join(env.directory, 'lib'), mode=0o755)
    try:
        env.start()
        yield env
    finally:
        env.stop(remove=not os.environ.get('QGA_E2E_KEEP_LOGS'))


def _poll_once(python_bin: str, confs: list[str], init_groups: bool, cwd: str
               ) -> subprocess.CompletedProcess:
    """qga-polling --once as the stack user, like devstack's systemd unit."""
    groups = ['--init-groups'] if init_groups else ['--clear-groups']
    argv = ['setpriv', '--reuid=' + plugin_tests.STACK_USER,
            '--regid=' + plugin_tests.LIBVIRT_GROUP, *groups, '--',
            python_bin, '--once']
    for conf in confs:
        argv += ['--config-file', conf]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={'PATH': os.environ['PATH'], 'LANG': 'C.UTF-8',
                               'HOME': cwd})


def _agent_up(samples_file: Path, uuid: str) -> list[float]:
    if not samples_file.exists():
        return []
    return [s['counter_volume'] for s in map(json.loads, samples_file.read_text().splitlines())
            if s['counter_name'] == 'guest.agent.up' and s['resource_id'] == uuid]


def test_stack_user_reaches_the_socket_libvirt_labelled(
        labelling_libvirtd, guest_image, workdir, e2e_timings):
    _ensure_stack_user()
    host_dir = workdir / 'host'
    host_dir.mkdir()
    venv = install_envs.devstack_env()
    host = plugin_tests.Host(host_dir, plugin_tests.COMPUTE, venv, qemu_conf=QEMU_CONF)
    host.run(*plugin_tests.STACK)
    st = os.stat(host.socket_dir)
    assert (st.st_uid, st.st_gid) == (pwd.getpwnam(QEMU_USER).pw_uid,
                                      grp.getgrnam(QEMU_GROUP).gr_gid)
    assert plugin_tests.STACK_USER in grp.getgrnam(QEMU_GROUP).gr_mem

    # A VM from Nova's XML through the hook chain, configured as the plugin
    # configured nova-cpu.conf; its files where QEMU's user can read them.
    nova_cpu = configparser.ConfigParser(interpolation=None)
    nova_cpu.read(host.nova_cpu_conf)
    chain = vm_fixtures.nova_hook_chain(nova_cpu['qga']['socket_dir'],
                                        nova_cpu['qga']['socket_group'])
    image_dir = workdir / 'image'
    image_dir.mkdir()
    for name in ('kernel', 'initrd'):
        shutil.copy(getattr(guest_image, name), image_dir / name)
    image = dataclasses.replace(guest_image, kernel=str(image_dir / 'kernel'),
                                initrd=str(image_dir / 'initrd'))
    vms = workdir / 'vms'
    vms.mkdir()
    os.chmod(vms, 0o777)
    launcher = vm_fixtures.VmLauncher(labelling_libvirtd, image, str(vms))
    try:
        started = time.monotonic()
        guest = launcher.start_nova_guest('e2e-devstack', 'qga', chain, data_disk=False)
        socket_path = guest.vm.monitor_socket
        assert socket_path == os.path.join(str(host.socket_dir), guest.vm.uuid + '.sock')
        # libvirt's DAC labelling of the socket it made for QEMU
        sock = os.stat(socket_path)
        assert (sock.st_uid, sock.st_gid) == (pwd.getpwnam(QEMU_USER).pw_uid,
                                              grp.getgrnam(QEMU_GROUP).gr_gid)
        assert not sock.st_mode & 0o002, oct(sock.st_mode)

        out = workdir / 'out'
        out.mkdir()
        os.chmod(out, 0o777)
        extra = out / 'static.conf'
        extra.write_text('[qga_polling]\ndiscovery = static\npublishers = file://%s\n'
                         'command_timeout = 2\n[static_discovery]\nguests = %s=%s\n'
                         % (out / 'samples.jsonl', guest.vm.uuid, socket_path))
        qga_polling = venv.bin('qga-polling')
        confs = [str(host.qga_conf), str(extra)]

        # As devstack runs it: up once the guest's agent answers.
        deadline = time.monotonic() + 120
        while True:
            result = _poll_once(qga_polling, confs, init_groups=True, cwd=str(out))
            up = _agent_up(out / 'samples.jsonl', guest.vm.uuid)
            if up and up[-1] == 1:
                break
            assert time.monotonic() < deadline, (up, result.stderr[-3000:],
                                                 launcher.diagnostics(guest.vm))
            time.sleep(2)
        e2e_timings['devstack_socket_first_up_s'] = time.monotonic() - started

        # The same, without the stack user's groups: the agent that just
        # answered is out of reach, the socket being QEMU's group's only.
        (out / 'samples.jsonl').unlink()
        denied = _poll_once(qga_polling, confs, init_groups=False, cwd=str(out))
        assert _agent_up(out / 'samples.jsonl', guest.vm.uuid) == [0], denied.stderr[-3000:]
    finally:
        launcher.cleanup()


def _ensure_stack_user() -> None:
    libvirt_env.ensure_qemu_user()
    if subprocess.run(['getent', 'passwd', plugin_tests.STACK_USER],
                      capture_output=True).returncode != 0:
        subprocess.run(['useradd', '--system', '--no-create-home', '--shell',
                        '/usr/sbin/nologin', plugin_tests.STACK_USER],
                       check=True, capture_output=True, timeout=60)
