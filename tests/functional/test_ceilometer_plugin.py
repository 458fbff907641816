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

"""Our pollsters inside Ceilometer's own polling agent code.

Real here:

* Ceilometer 27's ``AgentManager`` with ``namespaces=['compute']``: it
  loads our pollsters through stevedore from the installed
  ``ceilometer.poll.compute`` entry points, ``PollingManager`` reads a
  ``polling.yaml`` that selects them by meter name, ``setup_polling_tasks``
  and ``PollingTask.poll_and_notify`` run whole polling cycles (per-cycle
  cache, parallel pollster threads, timestamp unification,
  ``meter_message_from_counter`` signing, the oslo.messaging ``Notifier``);
* Ceilometer's ``local_instances`` discovery (``InstanceDiscovery``,
  ``libvirt_metadata`` method) reading the Nova metadata that Nova's own
  code writes (``tests/fixtures/nova_domain.py``) from libvirt;
* our ``libvirt`` discovery on the same libvirt for the channels, our
  socket transports, qemu-ga 7.2 stand-in guests, and the fake agent
  (``tests/fixtures/agents/fake_agent.py``) in ``hang`` mode for a hung agent.

Substituted, because it cannot run here or is covered elsewhere:

* the hypervisor is libvirt's in-process ``test:///default`` driver (no
  VMs on this host); each domain's monitor channel points at a stand-in
  agent's socket, so ``[qga_polling] transport = auto`` picks the socket;
* the agent's notifier uses oslo.messaging's ``test`` driver, which keeps
  notifications in memory; the bus and the notification agent are
  ``test_notification_agent.py``'s subject;
* commands are counted by spies wrapped around ``Transport.execute`` and
  ``Transport.execute_batch`` that record the commands and call the real
  methods.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import subprocess
import sys
import time
import uuid

from ceilometer.compute import discovery as ceilometer_discovery
from ceilometer.compute.pollsters import util as ceilometer_util
from ceilometer import messaging as ceilometer_messaging
from ceilometer.polling import manager as polling_manager
from ceilometer.publisher import utils as publisher_utils
from ceilometer import service as ceilometer_service
from oslo_messaging.notify import _impl_test
import pytest

from ceilometer_qga.guest import Guest
from ceilometer_qga.pollsters import guest_agent
from ceilometer_qga.pollsters import instance_guests
from ceilometer_qga.pollsters import polling_cycle
from ceilometer_qga.qga import transport as transport_mod
from ceilometer_qga import sample_factory
from ceilometer_qga import signature
from tests.fixtures import nova_domain

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

SECRET = 'plugin-test-secret'
COMMAND_TIMEOUT = 0.5
GUEST_BUDGET = 2.0
#: what a Ceilometer sample (as_dict) carries for the notification
NATIVE_KEYS = ('display_name', 'name', 'instance_id', 'instance_type',
               'host', 'instance_host', 'flavor', 'status', 'state',
               'image', 'image_ref', 'image_meta', 'architecture', 'os_type',
               'vcpus', 'memory_mb', 'disk_gb', 'ephemeral_gb', 'root_gb')


def reset_ceilometer_transports() -> None:
    """Forget the transports Ceilometer caches per process.

    ``ceilometer.messaging.get_transport`` keeps one transport per URL in a
    module global, so a later test would get this test's transport (and
    configuration).  ``messaging.cleanup()`` cannot be used: it deletes from
    the dict while iterating over it.
    """
    for transport in list(ceilometer_messaging.TRANSPORTS.values()):
        transport.cleanup()
    ceilometer_messaging.TRANSPORTS.clear()


@pytest.fixture
def ceilometer_conf(tmp_path):
    """Factory: a Ceilometer configuration whose polling.yaml has ``meters``."""
    def make(meters, qga_polling=''):
        (tmp_path / 'pollsters.d').mkdir(exist_ok=True)
        polling_yaml = tmp_path / 'polling.yaml'
        polling_yaml.write_text(
            'sources:\n  - name: guest_agent\n    interval: 300\n'
            '    meters:\n' + ''.join('      - "%s"\n' % m for m in meters))
        conf_file = tmp_path / 'ceilometer.conf'
        conf_file.write_text(f"""[DEFAULT]
host = compute-test
libvirt_uri = test:///default
pollsters_definitions_dirs = {tmp_path}/pollsters.d
[polling]
cfg_file = {polling_yaml}
threads_to_process_pollsters = 0
[publisher_notifier]
telemetry_driver = test
[publisher]
telemetry_secret = {SECRET}
[qga_polling]
command_timeout = {COMMAND_TIMEOUT}
guest_budget = {GUEST_BUDGET}
{qga_polling}
""")
        conf = ceilometer_service.prepare_service(['ceilometer-polling'],
                                                  [str(conf_file)])
        return conf

    _impl_test.reset()
    try:
        yield make
    finally:
        polling_cycle.close_all()
        reset_ceilometer_transports()
        _impl_test.reset()


def start_nova_guest(hv, socket_path: str, display_name: str) -> str:
    """Start a Nova domain whose monitor channel is ``socket_path``."""
    instance_id = str(uuid.uuid4())
    server = nova_domain.Server(
        uuid=instance_id, display_name=display_name,
        domain_name='instance-%s' % instance_id[:8],
        channels=((nova_domain.MONITOR, socket_path),))
    hv.start(nova_domain.nova_domain_xml(server))
    return instance_id


@pytest.fixture
def command_log(monkeypatch):
    """Every command our transports execute, as (guest, command)."""
    log = []
    real = transport_mod.Transport.execute

    real_batch = transport_mod.Transport.execute_batch

    async def spy(self, command, arguments=None, timeout=None):
        log.append((self.guest, command))
        return await real(self, command, arguments, timeout)

    async def batch_spy(self, requests, timeout=None):
        # A batch's commands one by one (the sweep's batch: prefetch.py).
        log.extend((self.guest, command) for command, _ in requests)
        return await real_batch(self, requests, timeout)

    monkeypatch.setattr(transport_mod.Transport, 'execute', spy)
    monkeypatch.setattr(transport_mod.Transport, 'execute_batch', batch_spy)
    return log


def our_extensions(manager):
    return {ext.name: ext for ext in manager.extensions
            if ext.name.startswith('guest.')}


def notified_samples():
    """Sample dicts of every telemetry.polling notification sent so far."""
    samples = []
    for _ctxt, message, priority, _retry in _impl_test.NOTIFICATIONS:
        assert message['event_type'] == 'telemetry.polling'
        assert message['publisher_id'] == 'ceilometer.polling'
        assert priority == 'SAMPLE'
        samples.extend(message['payload']['samples'])
    return samples


def test_agent_loads_every_meter_and_polling_yaml_selects_by_name(
        ceilometer_conf):
    conf = ceilometer_conf(['guest.agent.up', 'guest.filesystem.used'])
    manager = polling_manager.AgentManager(0, conf, namespaces=['compute'])
    ours = our_extensions(manager)

    assert sorted(ours) == sorted(guest_agent.catalogue())
    assert len(ours) == 26
    for name, ext in ours.items():
        assert ext.entry_point.module == 'ceilometer_qga.pollsters.guest_agent'
        assert isinstance(ext.obj, guest_agent.GuestAgentPollster)
        assert ext.obj.meter_name == name
        assert ext.obj.default_discovery == 'local_instances'
        meter = guest_agent.catalogue()[name]
        assert (ext.obj.sample_type, ext.obj.sample_unit) == (meter.type,
                                                              meter.unit)

    manager.polling_manager = polling_manager.PollingManager(conf)
    tasks = manager.setup_polling_tasks()
    assert list(tasks) == [300]
    selected = {p.name for p in tasks[300].pollster_matches['guest_agent']}
    assert selected == {'guest.agent.up', 'guest.filesystem.used'}


def _by_meter(samples, instance_id):
    found = collections.defaultdict(list)
    for s in samples:
        if s['resource_metadata'].get('instance_id') == instance_id:
            found[s['counter_name']].append(s)
    return found


def _os_release_id():
    with open('/etc/os-release') as f:
        for line in f:
            if line.startswith('ID='):
                return line.split('=', 1)[1].strip().strip('"')
    return None


def _check_plausible(found, instance_id):
    """Every meter qemu-ga 7.2 gives, with sane values and resource ids."""
    one = {name: found[name][0]['counter_volume'] for name in found}
    assert one['guest.agent.up'] == 1
    assert 0 < one['guest.agent.latency'] < COMMAND_TIMEOUT * 1000

    by_fs = collections.defaultdict(dict)
    for name in ('guest.filesystem.used', 'guest.filesystem.total',
                 'guest.filesystem.usage'):
        for s in found[name]:
            mountpoint = s['resource_metadata']['mountpoint']
            assert s['resource_id'] == sample_factory.resource_id(
                instance_id, mountpoint)
            assert s['resource_id'].startswith(instance_id + '-_2F')
            by_fs[mountpoint][name] = s['counter_volume']
    assert by_fs
    for figures in by_fs.values():
        used = figures['guest.filesystem.used']
        total = figures['guest.filesystem.total']
        assert 0 <= used <= total
        assert math.isclose(figures['guest.filesystem.usage'],
                            100.0 * used / total, rel_tol=1e-6)

    total, available, used = (one['guest.memory.total'],
                              one['guest.memory.available'],
                              one['guest.memory.used'])
    assert 0 < available < total
    assert math.isclose(used, total - available, abs_tol=0.01)
    assert one['guest.cpu.time'] > 0
    for name in ('guest.load.1', 'guest.load.5', 'guest.load.15'):
        assert one[name] >= 0
    assert 1 <= one['guest.vcpus.online'] <= os.cpu_count()
    assert one['guest.users'] >= 0

    for prefix, key in (('guest.disk.', 'disk_name'),
                        ('guest.network.', 'vnic_name')):
        names = [n for n in guest_agent.catalogue() if n.startswith(prefix)]
        for name in names:
            assert found[name], name
            for s in found[name]:
                item = s['resource_metadata'][key]
                assert s['resource_id'] == '%s-%s' % (instance_id, item)
                assert isinstance(s['counter_volume'], int)
                assert s['counter_volume'] >= 0


def test_polling_cycles_with_real_agents_and_a_hung_one(
        ceilometer_conf, hypervisor, qga_fleet, fake_agent, command_log,
        monkeypatch):
    # polling.yaml is the schedule inside Ceilometer: neither the declared
    # intervals (filesystem, vcpus: 300 s) nor these hold a meter back.
    conf = ceilometer_conf(['guest.*'], qga_polling='collector_intervals = '
                                                    'filesystem:3600,vcpus:3600')
    healthy = [start_nova_guest(hypervisor, g.socket, 'web-%d' % i)
               for i, g in enumerate(qga_fleet)]
    hung_agent = fake_agent('hang', name='hung')
    hung = start_nova_guest(hypervisor, hung_agent.socket, 'hung-1')

    # Ceilometer signs each sample; ours must sign none (a spy around our
    # signing, which calls the real function).
    our_signatures = []
    real_compute = signature.compute

    def compute_spy(message, secret, shared=None):
        if secret:
            our_signatures.append(message.get('counter_name'))
        return real_compute(message, secret, shared)
    monkeypatch.setattr(signature, 'compute', compute_spy)

    manager = polling_manager.AgentManager(0, conf, namespaces=['compute'])
    manager.polling_manager = polling_manager.PollingManager(conf)
    task = manager.setup_polling_tasks()[300]
    assert len(task.pollster_matches['guest_agent']) == 26

    start = time.monotonic()
    task.poll_and_notify()
    first_cycle = time.monotonic() - start
    first = notified_samples()
    first_commands = list(command_log)
    task.poll_and_notify()
    second = notified_samples()[len(first):]
    second_commands = command_log[len(first_commands):]
    assert first and second and our_signatures == []

    # The hung guest cost one command timeout, not one per pollster.
    assert first_cycle < COMMAND_TIMEOUT + 3.0, first_cycle

    # Ceilometer's own instances, as its discovery finds them, to compare
    # the metadata with what a native compute sample would carry.
    instances = {i.id: i for i in ceilometer_discovery.InstanceDiscovery(
        conf).discover(manager)}
    catalogue = guest_agent.catalogue()
    for samples in (first, second):
        for s in samples:
            assert publisher_utils.verify_signature(s, SECRET)
            meter = catalogue[s['counter_name']]
            assert (s['counter_type'], s['counter_unit']) == (meter.type,
                                                              meter.unit)
        for instance_id in healthy:
            found = _by_meter(samples, instance_id)
            assert sorted(found) == sorted(catalogue), instance_id
            _check_plausible(found, instance_id)
            native = ceilometer_util.make_sample_from_instance(
                conf, instances[instance_id], 'x', 'gauge', 'x', 0)
            for s in (found['guest.agent.up'][0],
                      found['guest.filesystem.used'][0]):
                md = s['resource_metadata']
                for key in NATIVE_KEYS:
                    assert md[key] == native.resource_metadata[key], key
                assert s['user_id'] == native.user_id
                assert s['project_id'] == native.project_id
                assert md['os_id'] == _os_release_id()
                assert md['agent_version'].startswith('7.2')

        # The hung agent: down, and nothing else from it.
        found = _by_meter(samples, hung)
        assert list(found) == ['guest.agent.up']
        [up] = found['guest.agent.up']
        assert up['counter_volume'] == 0
        assert up['resource_id'] == hung
        assert up['resource_metadata']['display_name'] == 'hung-1'
    assert _by_meter(first, hung)['guest.agent.up'][0][
        'resource_metadata']['agent_state'] in ('timeout', 'over_budget')
    # ... then backed off: the second cycle does not even try it.
    assert _by_meter(second, hung)['guest.agent.up'][0][
        'resource_metadata']['agent_state'] == 'backoff'

    for instance_id in healthy:
        cpu = [_by_meter(samples, instance_id)['guest.cpu.time'][0]
               for samples in (first, second)]
        assert cpu[0]['counter_volume'] <= cpu[1]['counter_volume']

    # Nothing was blacklisted: a down agent is not a permanent error.
    assert all(not r.blacklist for r in task.resources.values())

    # One poll per guest per cycle for 26 pollsters running in parallel.
    for commands in (first_commands, second_commands):
        per_guest = collections.Counter(commands)
        for instance_id in healthy:
            assert per_guest[(instance_id, 'guest-ping')] == 1
            assert per_guest[(instance_id, 'guest-get-fsinfo')] == 1
            assert per_guest[(instance_id, 'guest-get-vcpus')] == 1
            assert per_guest[(instance_id, 'guest-network-get-interfaces')] == 1
    assert collections.Counter(first_commands)[(hung, 'guest-ping')] == 1
    assert not [c for c in second_commands if c[0] == hung]
    assert polling_cycle.for_conf(conf).sweeps == 2
    # Sessions outlive the cycle: capabilities were read once.
    for instance_id in healthy:
        assert (instance_id, 'guest-info') in first_commands
        assert (instance_id, 'guest-info') not in second_commands


class RecordingHandler(logging.Handler):
    """Keeps every log record (oslo.log's setup drops pytest's handler)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.parametrize('line,option', [
    ('transport = bogus', '[qga_polling] transport'),
    ('discovery = nosuch', '[qga_polling] discovery'),
    ('command_timeout = nan', '[qga_polling] command_timeout'),
    ('guest_budget = 0', '[qga_polling] guest_budget'),
    ('collector_intervals = filesystem:-1',
     '[qga_polling] collector_intervals = filesystem:-1'),
    ('collector_intervals = nosuch:60',
     "[qga_polling] collector_intervals = 'nosuch'"),
])
def test_bad_option_disables_the_pollsters_once_at_load(
        ceilometer_conf, hypervisor, qga_guest, command_log, line, option):
    conf = ceilometer_conf(['guest.*'], qga_polling=line)
    start_nova_guest(hypervisor, qga_guest.socket, 'web-1')
    # After prepare_service: oslo.log's setup replaces the root handlers.
    records = RecordingHandler()
    logging.getLogger().addHandler(records)
    try:
        manager = polling_manager.AgentManager(0, conf,
                                               namespaces=['compute'])
        manager.polling_manager = polling_manager.PollingManager(conf)
        tasks = manager.setup_polling_tasks()
        for task in tasks.values():
            for _cycle in range(3):
                task.poll_and_notify()
    finally:
        logging.getLogger().removeHandler(records)

    # Not loaded at all: Ceilometer skipped every one of our 26 pollsters
    # (ExtensionLoadError), so no cycle runs them, and nothing is sent.
    assert our_extensions(manager) == {}
    assert 'guest_agent' not in [
        name for task in tasks.values() for name in task.pollster_matches
        if task.pollster_matches[name]]
    assert notified_samples() == []
    assert command_log == []
    ours = [r for r in records.records if r.name.startswith('ceilometer_qga')]
    errors = [r for r in ours if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert 'Guest-agent pollsters disabled' in errors[0].getMessage()
    assert option in errors[0].getMessage()
    assert not any(r.exc_info for r in records.records), 'traceback logged'


def test_ceilometer_polling_process_logs_a_bad_option_once(tmp_path):
    """The real ``ceilometer-polling`` console script, three cycles."""
    (tmp_path / 'pollsters.d').mkdir()
    polling_yaml = tmp_path / 'polling.yaml'
    polling_yaml.write_text('sources:\n  - name: guest_agent\n'
                            '    interval: 1\n    meters:\n'
                            '      - "guest.*"\n')
    log_file = tmp_path / 'polling.log'
    conf_file = tmp_path / 'ceilometer.conf'
    conf_file.write_text(f"""[DEFAULT]
host = compute-test
libvirt_uri = test:///default
log_file = {log_file}
pollsters_definitions_dirs = {tmp_path}/pollsters.d
[polling]
cfg_file = {polling_yaml}
[publisher_notifier]
telemetry_driver = test
[qga_polling]
transport = bogus
""")
    binary = os.path.join(os.path.dirname(sys.executable),
                          'ceilometer-polling')
    proc = subprocess.Popen(
        [binary, '--config-file', str(conf_file),
         '--polling-namespaces', 'compute'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 40
        text = ''
        while time.monotonic() < deadline:
            text = log_file.read_text() if log_file.exists() else ''
            if text.count('Polling pollster') or (
                    'Guest-agent pollsters disabled' in text
                    and time.monotonic() > deadline - 30):
                break
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    text = log_file.read_text()
    disabled = [line for line in text.splitlines()
                if 'Guest-agent pollsters disabled' in line]
    assert len(disabled) == 1, text[-3000:]
    assert '[qga_polling] transport' in disabled[0]
    assert 'one of: socket, libvirt, auto' in disabled[0]
    assert 'Traceback' not in text
    assert 'guest.agent.up' not in text.replace(disabled[0], '')


def test_legacy_guest_costs_no_crash_and_no_log_flood(
        ceilometer_conf, hypervisor, qga_guest):
    """A guest created the old way (no channel) beside a healthy one."""
    conf = ceilometer_conf(['guest.*'])
    healthy = start_nova_guest(hypervisor, qga_guest.socket, 'web-1')
    legacy = str(uuid.uuid4())
    hypervisor.start(nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=legacy, domain_name='instance-%s' % legacy[:8],
        display_name='legacy-1', channels=())))
    records = RecordingHandler()
    logging.getLogger().addHandler(records)
    try:
        manager = polling_manager.AgentManager(0, conf,
                                               namespaces=['compute'])
        manager.polling_manager = polling_manager.PollingManager(conf)
        task = manager.setup_polling_tasks()[300]
        cycles = 10
        for _cycle in range(cycles):
            task.poll_and_notify()
    finally:
        logging.getLogger().removeHandler(records)

    ours = [r for r in records.records if r.name.startswith('ceilometer_qga')
            and r.levelno >= logging.WARNING]
    about_legacy = [r for r in ours if legacy in r.getMessage()]
    assert len(about_legacy) <= 2, [r.getMessage() for r in about_legacy]
    assert not any(r.exc_info for r in records.records)
    samples = notified_samples()
    ups = [s for s in _by_meter(samples, healthy)['guest.agent.up']]
    assert [s['counter_volume'] for s in ups] == [1] * cycles
    assert polling_cycle.for_conf(conf).sweeps == cycles
    # Never blacklisted: a guest without an agent is not an error.
    assert all(not r.blacklist for r in task.resources.values())


def test_old_way_guests_get_no_samples_in_ceilometer(
        ceilometer_conf, hypervisor, qga_guest, short_tmpdir, command_log):
    """A Nova instance without agent channel: no up=0, nothing sent to it.

    Beside it, an instance whose channel leads nowhere (its agent never
    answers) is down: that one is the alarm.
    """
    conf = ceilometer_conf(['guest.*'])
    modern = start_nova_guest(hypervisor, qga_guest.socket, 'web-1')
    silent = start_nova_guest(hypervisor, short_tmpdir + '/nobody.sock',
                              'silent-1')
    legacy = str(uuid.uuid4())
    hypervisor.start(nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=legacy, display_name='old-1',
        domain_name='instance-%s' % legacy[:8])))
    manager = polling_manager.AgentManager(0, conf, namespaces=['compute'])
    manager.polling_manager = polling_manager.PollingManager(conf)
    task = manager.setup_polling_tasks()[300]

    task.poll_and_notify()
    task.poll_and_notify()

    samples = notified_samples()
    assert _by_meter(samples, legacy) == {}
    assert not [c for c in command_log if c[0] == legacy]
    assert [s['counter_volume']
            for s in _by_meter(samples, silent)['guest.agent.up']] == [0, 0]
    assert [s['counter_volume']
            for s in _by_meter(samples, modern)['guest.agent.up']] == [1, 1]
    assert all(not r.blacklist for r in task.resources.values())


#: imports every ceilometer_qga module but the plugin, with Ceilometer
#: made unimportable, then shows that the plugin does need it
WITHOUT_CEILOMETER = """
import importlib, pkgutil, sys
sys.modules['ceilometer'] = None
import ceilometer_qga
names = [m.name for m in pkgutil.walk_packages(ceilometer_qga.__path__,
                                               'ceilometer_qga.')]
for name in names:
    if not name.startswith('ceilometer_qga.pollsters.'):
        importlib.import_module(name)
try:
    importlib.import_module('ceilometer_qga.pollsters.guest_agent')
except ImportError:
    print('%d modules without ceilometer' % len(names))
"""


def test_nothing_but_the_plugin_needs_ceilometer():
    proc = subprocess.run([sys.executable, '-c', WITHOUT_CEILOMETER],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith('modules without ceilometer\n'), proc.stdout


@pytest.mark.parametrize('vm_state,expected', [
    ('active', 'running'), ('paused', 'paused'), ('stopped', 'shutdown'),
    ('building', None), (None, None)])
def test_ceilometer_vm_state_speaks_the_pollers_words(vm_state, expected):
    """Ceilometer's vm_state, in the poller's words.

    Without a live state from our discovery (static), it decides; 'active'
    must not read as "not running".
    """
    server = ceilometer_discovery.NovaLikeServer(**{
        'id': '0b0e6c4e-5f4a-4b6f-9d55-1f1a2b3c4d5e', 'name': 'web-1',
        'OS-EXT-STS:vm_state': vm_state, 'tenant_id': 'p', 'user_id': 'u'})
    found = Guest('0b0e6c4e-5f4a-4b6f-9d55-1f1a2b3c4d5e', 'x')
    guest = instance_guests.guest_for(server, found)
    assert guest.metadata.get('state') == expected
