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

"""The real ``ceilometer-polling`` runs our pollsters against a real VM.

Installed as ``doc/source/admin/deployment.rst`` says: a fresh environment
with Ceilometer 27 (its wheel from PyPI), then ``pip install qga-monitor`` into it with its
requirements resolved, libvirt-python among them
(``tests/fixtures/install_envs.py``: the requirements themselves are the
test venv's, which pip sees as installed).  Then Ceilometer's own console
script ``ceilometer-polling --polling-namespaces compute`` runs as a
process with our ``etc/ceilometer/polling.yaml`` source, Ceilometer's own
``local_instances`` discovery (``libvirt_metadata``, read-only connection)
and its notifier publishing into a RabbitMQ virtual host of this module,
where an oslo.messaging listener on exchange ``ceilometer`` takes the
samples as the notification agent would.  The guest is a TCG VM made from
Nova's XML through our hook chain on the private libvirtd, with both
agents.  Nothing is mocked.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
import os
import subprocess
import threading
import time
from typing import Any

from ceilometer.publisher.utils import verify_signature
from oslo_config import cfg
import oslo_messaging
import pytest
import yaml

from nova_qga import hook_chain
from tests.fixtures import install_envs
from tests.fixtures import processes
from tests.fixtures import rabbit
from tests.fixtures import vm as vm_fixtures

pytestmark = pytest.mark.e2e

ROOT = install_envs.ROOT
OUR_SOURCE = os.path.join(ROOT, 'etc', 'ceilometer', 'polling.yaml')
SECRET = 'e2e-ceilometer-secret'
HOST = 'compute-e2e'
INTERVAL = 10
#: Meters the healthy guest has data for whatever the host (no NIC needed).
EXPECTED = {
    'guest.agent.up', 'guest.agent.latency',
    'guest.filesystem.used', 'guest.filesystem.total', 'guest.filesystem.usage',
    'guest.memory.total', 'guest.memory.available', 'guest.memory.used',
    'guest.cpu.time', 'guest.load.1', 'guest.load.5', 'guest.load.15',
    'guest.disk.read.bytes', 'guest.disk.write.bytes',
    'guest.disk.read.requests', 'guest.disk.write.requests',
    'guest.users', 'guest.vcpus.online',
}


class Samples:
    """Notification endpoint keeping every sample of ``telemetry.polling``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def sample(self, ctxt: Any, publisher_id: str, event_type: str,
               payload: dict, metadata: dict) -> Any:
        with self._cond:
            for s in payload.get('samples', ()):
                self.received.append((publisher_id, s))
            self._cond.notify_all()
        return oslo_messaging.NotificationResult.HANDLED

    def wait_for_meters(self, meters: set[str], timeout: float) -> set[str]:
        """The meters seen once all of ``meters`` came, or at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                seen = {s['counter_name'] for _, s in self.received}
                left = deadline - time.monotonic()
                if meters <= seen or left <= 0:
                    return seen
                self._cond.wait(min(left, 0.5))


@pytest.fixture(scope='module')
def ceilometer_env() -> install_envs.Env:
    return install_envs.ceilometer_env(os.path.dirname(install_envs.session_wheel()))


@pytest.fixture(scope='module')
def guest(vm_launcher: vm_fixtures.VmLauncher, socket_dir: str) -> vm_fixtures.NovaGuest:
    chain: hook_chain.HookChain = vm_fixtures.nova_hook_chain(socket_dir)
    return vm_launcher.start_nova_guest('e2e-ceilometer', 'qga', chain)


@pytest.fixture(scope='module')
def bus(rabbit_vhost: str) -> Iterator[tuple[str, Samples]]:
    url = rabbit.vhost_url(rabbit_vhost)
    conf = cfg.ConfigOpts()
    conf([], project='qga-e2e', default_config_files=[], default_config_dirs=[])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    endpoint = Samples()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications', exchange='ceilometer')],
        [endpoint], executor='threading', pool='qga-e2e-ceilometer')
    listener.start()
    try:
        yield url, endpoint
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


def _config(tmp_path, uri: str, bus_url: str) -> str:
    with open(OUR_SOURCE) as src:
        polling = yaml.safe_load(src)
    polling['sources'][0]['interval'] = INTERVAL
    (tmp_path / 'polling.yaml').write_text(yaml.safe_dump(polling))
    (tmp_path / 'pollsters.d').mkdir()
    conf = tmp_path / 'ceilometer.conf'
    conf.write_text(f"""[DEFAULT]
host = {HOST}
libvirt_uri = {uri}
transport_url = {bus_url}
pollsters_definitions_dirs = {tmp_path}/pollsters.d
log_file = {tmp_path}/ceilometer-polling.log
[polling]
cfg_file = {tmp_path}/polling.yaml
[oslo_messaging_notifications]
topics = notifications
[publisher]
telemetry_secret = {SECRET}
[qga_polling]
transport = auto
command_timeout = 2
guest_budget = 10
""")
    return str(conf)


def test_real_ceilometer_polling_publishes_our_meters(ceilometer_env, guest, libvirtd,
                                                      bus, tmp_path, e2e_timings):
    env = ceilometer_env
    # Installed the operator guide's way: our requirements, libvirt-python
    # too.
    requires = subprocess.run(
        [env.python, '-I', '-c', 'import importlib.metadata as m; '
         'print("\\n".join(m.requires("qga-monitor")))'],
        capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert any(r.startswith('libvirt-python') for r in requires), requires
    assert os.path.exists(env.bin('ceilometer-polling'))

    bus_url, samples = bus
    conf = _config(tmp_path, libvirtd.uri, bus_url)
    environ = {'PATH': os.environ['PATH'], 'HOME': str(tmp_path), 'LANG': 'C.UTF-8'}
    started = time.monotonic()
    proc = subprocess.Popen(
        [env.bin('ceilometer-polling'), '--polling-namespaces', 'compute',
         '--config-file', conf], cwd=str(tmp_path), env=environ,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        seen = samples.wait_for_meters(EXPECTED, timeout=120)
        e2e_timings['ceilometer_polling_first_meters_s'] = time.monotonic() - started
    finally:
        if proc.poll() is None:
            processes.stop_pid(proc.pid, timeout=10, group=True)
        _, stderr = proc.communicate(timeout=30)
    log_file = tmp_path / 'ceilometer-polling.log'
    log = log_file.read_text() if log_file.exists() else ''
    why = '--- stderr:\n%s\n--- log:\n%s' % (stderr[-3000:], log[-6000:])
    assert EXPECTED <= seen, (sorted(EXPECTED - seen), why)
    assert 'python-libvirt module is missing' not in log

    vm, instance = guest.vm, guest.instance
    ours = [s for pub, s in samples.received if s['counter_name'].startswith('guest.')]
    # Published by Ceilometer's own agent, signed with its secret.
    assert {pub for pub, s in samples.received} == {'ceilometer.polling'}
    for s in ours:
        assert verify_signature(s, SECRET), s
        assert s['resource_id'].startswith(vm.uuid), s
        assert (s['project_id'], s['user_id']) == (instance.project_id, instance.user_id)
    by_meter = collections.defaultdict(list)
    for s in ours:
        by_meter[s['counter_name']].append(s)
    # 0 while the guest was still booting, then 1.
    assert by_meter['guest.agent.up'][-1]['counter_volume'] == 1, by_meter['guest.agent.up']
    assert by_meter['guest.filesystem.used'][0]['resource_id'] == vm.uuid + '-_2Fmnt'
    memory = by_meter['guest.memory.total'][0]
    assert 64 < memory['counter_volume'] < 128
    assert memory['resource_metadata']['display_name'] == instance.display_name
