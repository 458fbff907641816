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

"""The poller end to end: Nova's XML, our hooks, libvirt, real guests, the bus.

Every part is the real one: the domain XML comes from Nova's own
``LibvirtConfigGuest`` objects and Nova metadata code for a real Nova
``Instance`` and goes through the ``nova_qga`` hook chain the driver runs;
the private libvirtd defines and starts it under TCG; the guests run
``qemu-ga`` on the standard channel (reached through libvirt) and a second
one on the monitor channel (reached through its unix socket);
``qga-polling`` runs as its own process with libvirt discovery and
publishes to RabbitMQ, where an oslo.messaging listener on exchange
``ceilometer`` receives the samples as Ceilometer's notification agent
would.  Nothing is mocked.

Guests, booted sparingly (module scope):

* ``healthy``: both agents, the ext4 data disk, and (when ``/dev/net/tun``
  exists) a virtio NIC on a host tap device, Nova's ``ethernet`` VIF type,
  so that the guest has an interface besides ``lo``.  It boots first and
  alone (boot-to-first-sample is measured on it) and serves every test.
* ``noagent`` (no agent ever), ``late`` (agents start :data:`LATE_DELAY` s
  after init) and ``hung`` (ports opened, nothing answers): booted together
  by the first test that needs them, while ``healthy`` is being polled.

The tests run in file order; ``test_destroyed_mid_sweep`` destroys
``hung``.  Every process started here is stopped by pid in a ``finally``
(and checked to have left nothing behind in its session); every domain is
destroyed and undefined by the launcher, pass or fail.  The bus is a
RabbitMQ virtual host of this module's own, deleted with its queues.

``test_service_on_the_bus`` runs the service as deployed (console script,
libvirt discovery, ``notifier://``, ``interval = 2``) over several sweeps.

Timings go into ``e2e_timings`` (printed at the end of the run):
``boot_to_first_sample_s`` (``dom.create()`` to the first sweep with
``guest.agent.up`` 1), ``nova_vm_{libvirt,socket}_ping_{median,p95}_ms``
(guest-ping round trip through real virtio-serial), the sweep durations
with agent-less and hung guests present, and the service's stop time.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
import dataclasses
import datetime
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from ceilometer.publisher.utils import verify_signature
import libvirt
import libvirt_qemu
from lxml import etree
from oslo_config import cfg
import oslo_messaging
import pytest

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga.discovery import libvirt as discovery_libvirt
from ceilometer_qga import freeze
from ceilometer_qga.guest import STANDARD_CHANNEL
from ceilometer_qga import pipeline as pipeline_mod
from ceilometer_qga.qga import capabilities
from ceilometer_qga.qga import transport_libvirt
from ceilometer_qga.qga import transport_socket
from nova_qga import hook_chain
from tests.fixtures import libvirt_env as env_fixtures
from tests.fixtures import processes
from tests.fixtures import rabbit
from tests.fixtures import vm as vm_fixtures

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MONITOR_CHANNEL = vm_fixtures.MONITOR_CHANNEL
HOST = 'e2e-compute-1'
SECRET = 'e2e-poller-secret'
COMMAND_TIMEOUT = 2.0
LATE_DELAY = 15
#: a sweep with agent-less guests present may take the command timeout
#: once (they are polled in parallel), never once per guest
SWEEP_BOUND = COMMAND_TIMEOUT + 1.5
#: Nova's ethernet VIF needs a tap device
HAVE_TUN = os.path.exists('/dev/net/tun')
SAMPLE_KEYS = {'source', 'counter_name', 'counter_type', 'counter_unit',
               'counter_volume', 'user_id', 'user_name', 'project_id',
               'project_name', 'resource_id', 'timestamp', 'resource_metadata',
               'message_id', 'monotonic_time', 'message_signature'}
_SWEEP_RE = re.compile(r'^(\S+ \S+) .*Sweep: (\d+) guests, (\d+) up, (\d+) samples '
                       r'in ([\d.]+) s(?:, \d+ legacy .*)?$', re.MULTILINE)


# -- qga-polling as a process ----------------------------------------------

@dataclasses.dataclass
class Sweep:
    """One ``Sweep: ...`` line of the poller's log."""

    ended: float  # wall clock (time.time()) of the log line
    guests: int
    up: int
    samples: int
    duration: float

    @property
    def started(self) -> float:
        """Wall clock of the sweep's start (to about 10 ms)."""
        return self.ended - self.duration


@dataclasses.dataclass
class PollerConf:
    """One qga-polling configuration file and what it writes."""

    path: str
    samples_path: str
    log_path: str

    def samples(self) -> list[dict[str, Any]]:
        """The samples the file publisher wrote so far."""
        try:
            with open(self.samples_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def log(self) -> str:
        """The poller's log so far ('' before it wrote one)."""
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def sweeps(self) -> list[Sweep]:
        """The sweeps the poller logged so far."""
        found = []
        for match in _SWEEP_RE.finditer(self.log()):
            ended = datetime.datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S.%f')
            found.append(Sweep(ended.timestamp(), int(match.group(2)), int(match.group(3)),
                               int(match.group(4)), float(match.group(5))))
        return found


@dataclasses.dataclass
class OnceRun:
    """What one ``qga-polling --once`` did."""

    conf: PollerConf
    rc: int
    stderr: str
    samples: list[dict[str, Any]]
    sweep: Sweep
    wall: float

    def of(self, guest: vm_fixtures.NovaGuest) -> list[dict[str, Any]]:
        """The samples of one guest (instance and per-item resources)."""
        return [s for s in self.samples if s['resource_id'].startswith(guest.vm.uuid)]

    def up(self, guest: vm_fixtures.NovaGuest) -> dict[str, Any]:
        """The guest.agent.up sample of one guest."""
        found = [s for s in self.of(guest) if s['counter_name'] == 'guest.agent.up']
        assert len(found) == 1, (guest.vm.name, found, self.diagnostics())
        return found[0]

    def diagnostics(self) -> str:
        """Exit code, stderr and log, for assertion messages."""
        return 'rc %s\n--- stderr:\n%s\n--- log:\n%s' % (
            self.rc, self.stderr[-3000:], self.conf.log()[-5000:])


class PollerCli:
    """Writes qga-polling configurations and runs the command, by pid.

    The command is ``python -m ceilometer_qga.cmd.polling`` with this
    checkout first on the path: the tests exercise the working tree, as
    the rest of the suite does (``pythonpath = .``).
    """

    def __init__(self, workdir: str, uri: str, transport_url: str) -> None:
        self.workdir = workdir
        self.uri = uri
        self.transport_url = transport_url
        self._count = 0

    def conf(self, transport: str, notifier: bool = False, **polling: Any) -> PollerConf:
        """A fresh configuration (own samples file and log).

        :param transport: ``[qga_polling] transport``
        :param notifier: also publish to the bus (``notifier://``)
        :param polling: more ``[qga_polling]`` options
        """
        self._count += 1
        base = os.path.join(self.workdir, '%02d-%s' % (self._count, transport))
        conf = PollerConf(base + '.conf', base + '.jsonl', base + '.log')
        publishers = ['file://' + conf.samples_path]
        if notifier:
            publishers.insert(0, 'notifier://')
        options = {'discovery': 'libvirt', 'transport': transport,
                   'publishers': ','.join(publishers),
                   'command_timeout': COMMAND_TIMEOUT, 'guest_budget': 10,
                   'backoff_initial': 0, 'interval': 1, 'shutdown_timeout': 3}
        options.update(polling)
        lines = ['[DEFAULT]', 'host = %s' % HOST, 'log_file = %s' % conf.log_path,
                 'transport_url = %s' % self.transport_url, '[qga_polling]']
        lines += ['%s = %s' % item for item in options.items()]
        lines += ['[libvirt_discovery]', 'uri = %s' % self.uri,
                  '[publisher]', 'telemetry_secret = %s' % SECRET]
        with open(conf.path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return conf

    @staticmethod
    def argv(conf: PollerConf, *extra: str) -> list[str]:
        """The command line of qga-polling with ``conf``."""
        return [sys.executable, '-m', 'ceilometer_qga.cmd.polling',
                '--config-file', conf.path, *extra]

    @staticmethod
    def env() -> dict[str, str]:
        """The environment, with this checkout first on PYTHONPATH."""
        path = os.environ.get('PYTHONPATH')
        return dict(os.environ, PYTHONPATH=REPO + (os.pathsep + path if path else ''))

    @staticmethod
    def console_argv(conf: PollerConf, *extra: str) -> list[str]:
        """The installed console script (``.venv/bin/qga-polling``) with ``conf``.

        It imports this checkout too (PYTHONPATH, see :meth:`env`), through
        the entry point an operator runs.
        """
        return [os.path.join(os.path.dirname(sys.executable), 'qga-polling'),
                '--config-file', conf.path, *extra]

    def popen(self, conf: PollerConf, *extra: str, console: bool = False,
              **kwargs: Any) -> subprocess.Popen:
        """Start qga-polling in a session of its own (its pid is its group).

        :param console: through the console script, not ``python -m``
        """
        argv = self.console_argv(conf, *extra) if console else self.argv(conf, *extra)
        return subprocess.Popen(argv, cwd=REPO, env=self.env(),
                                stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)

    def once(self, transport: str, notifier: bool = False, timeout: float = 90.0,
             **polling: Any) -> OnceRun:
        """Run ``qga-polling --once``; killed by pid if it outlives ``timeout``."""
        conf = self.conf(transport, notifier, **polling)
        started = time.monotonic()
        proc = self.popen(conf, '--once', stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
        try:
            _, stderr = proc.communicate(timeout=timeout)
            leftovers = processes.session_pids(proc.pid)
        finally:
            stop_session(proc)
        wall = time.monotonic() - started
        sweeps = conf.sweeps()
        run = OnceRun(conf, proc.returncode, stderr, conf.samples(),
                      sweeps[0] if sweeps else Sweep(0, 0, 0, 0, -1.0), wall)
        assert run.rc == 0 and len(sweeps) == 1, run.diagnostics()
        assert leftovers == [], leftovers
        assert 'Traceback' not in stderr + conf.log(), run.diagnostics()
        return run


def stop_session(proc: subprocess.Popen) -> None:
    """Stop ``proc`` (its whole group) and anything left in its session, by pid."""
    if proc.poll() is None:
        processes.stop_pid(proc.pid, timeout=5, group=True)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    for pid in processes.session_pids(proc.pid):
        processes.stop_pid(pid, timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


# -- the bus ---------------------------------------------------------------

class BusListener:
    """oslo.messaging notification endpoint keeping every sample it gets."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def sample(self, ctxt: Any, publisher_id: str, event_type: str, payload: dict,
               metadata: dict) -> Any:
        with self._cond:
            self.notifications.append((publisher_id, event_type, payload))
            self._cond.notify_all()
        return oslo_messaging.NotificationResult.HANDLED

    def wait_for(self, message_ids: set[str], timeout: float = 30.0) -> dict[str, tuple]:
        """message_id -> (publisher_id, event_type, sample) for ``message_ids``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = {s['message_id']: (pub, event, s)
                         for pub, event, payload in self.notifications
                         for s in payload.get('samples', ())
                         if s.get('message_id') in message_ids}
                left = deadline - time.monotonic()
                if len(found) == len(message_ids) or left <= 0:
                    return found
                self._cond.wait(min(left, 0.5))


@pytest.fixture(scope='module')
def bus_url(rabbit_vhost: str) -> str:
    """The module's own RabbitMQ virtual host (deleted with its queues)."""
    return rabbit.vhost_url(rabbit_vhost)


@pytest.fixture(scope='module')
def bus(bus_url: str) -> Iterator[BusListener]:
    """A listener on exchange ``ceilometer``, topic ``notifications``."""
    conf = cfg.ConfigOpts()
    conf([], project='qga-e2e', default_config_files=[], default_config_dirs=[])
    transport = oslo_messaging.get_notification_transport(conf, url=bus_url)
    endpoint = BusListener()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications', exchange='ceilometer')],
        [endpoint], executor='threading', pool='qga-e2e')
    listener.start()
    try:
        yield endpoint
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


# -- guests ----------------------------------------------------------------

@pytest.fixture(scope='module')
def nova_chain(socket_dir: str) -> hook_chain.HookChain:
    """The default hook chain (agent_channel, monitor_channel)."""
    return vm_fixtures.nova_hook_chain(socket_dir)


@pytest.fixture(scope='module')
def healthy(vm_launcher: vm_fixtures.VmLauncher,
            nova_chain: hook_chain.HookChain) -> vm_fixtures.NovaGuest:
    """Both agents, data disk, NIC when possible; booted first and alone."""
    return vm_launcher.start_nova_guest('e2e-healthy', 'qga', nova_chain, nic=HAVE_TUN)


@pytest.fixture(scope='module')
def troubled(vm_launcher: vm_fixtures.VmLauncher, nova_chain: hook_chain.HookChain,
             healthy: vm_fixtures.NovaGuest) -> dict[str, vm_fixtures.NovaGuest]:
    """``noagent``, ``late`` and ``hung``, booted together (after ``healthy``)."""
    return {
        variant: vm_launcher.start_nova_guest('e2e-' + variant, variant, nova_chain,
                                              delay=LATE_DELAY, data_disk=False)
        for variant in ('noagent', 'late', 'hung')
    }


@pytest.fixture(scope='module')
def poller(libvirtd: Any, bus_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> PollerCli:
    """qga-polling against the private libvirtd and the module's vhost."""
    return PollerCli(str(tmp_path_factory.mktemp('poller')), libvirtd.uri, bus_url)


@pytest.fixture(scope='module')
def agent_commands(healthy: vm_fixtures.NovaGuest) -> capabilities.Capabilities:
    """What the healthy guest's standard agent offers (its own guest-info).

    Waiting for it also makes sure the healthy guest is up before a test
    that needs it (listed before ``troubled``, it is set up first).
    """
    deadline = time.monotonic() + 120
    while True:
        try:
            reply = libvirt_qemu.qemuAgentCommand(
                healthy.vm.dom, json.dumps({'execute': 'guest-info'}), 5, 0)
            return capabilities.parse_guest_info(json.loads(reply)['return'])
        except libvirt.libvirtError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def in_process_conf(uri: str, samples_path: str, transport: str) -> cfg.ConfigOpts:
    """Configuration of an in-process :class:`Pipeline`."""
    conf = env_fixtures.poller_conf(uri, qga_polling={
        'transport': transport, 'publishers': ['file://' + samples_path],
        'command_timeout': COMMAND_TIMEOUT, 'backoff_initial': 0})
    conf.set_override('host', HOST)
    return conf


def report_of(result: Any, guest: vm_fixtures.NovaGuest) -> Any:
    """The report of one guest in a sweep result, or None."""
    for report in result.reports:
        if report.guest.instance_id == guest.vm.uuid:
            return report
    return None


# -- what a healthy guest's samples must say ----------------------------------

def expected_sources(caps: capabilities.Capabilities) -> dict[str, str]:
    """meter -> collected_by, from the collectors' declarations and the agent.

    A collector whose command the agent offers runs natively; else its
    /proc fallback file is read (the agent offers guest-file-*).
    """
    conf = env_fixtures.poller_conf('test:///default')
    sources = {}
    for collector in load_collectors(conf):
        if collector.command and caps.supports(collector.command):
            source = 'native'
        elif collector.fallback_file:
            source = 'fallback'
        else:
            continue
        for meter in collector.meters:
            sources[meter.name] = source
    if not HAVE_TUN:
        # Only lo, which is excluded: no interface to report.
        sources = {m: s for m, s in sources.items() if not m.startswith('guest.network.')}
    return sources


def check_healthy(run: OnceRun, guest: vm_fixtures.NovaGuest,
                  caps: capabilities.Capabilities) -> dict[str, str]:
    """Assert everything the healthy guest's samples say; meter -> collected_by."""
    vm, instance = guest.vm, guest.instance
    samples = run.of(guest)
    why = run.diagnostics()
    for s in samples:
        assert set(s) == SAMPLE_KEYS, s
        assert verify_signature(s, SECRET), s
        assert s['source'] == 'openstack'
        assert (s['project_id'], s['user_id']) == (instance.project_id, instance.user_id)
    by_meter = collections.defaultdict(list)
    for s in samples:
        by_meter[s['counter_name']].append(s)
    up = run.up(guest)
    assert up['counter_volume'] == 1, (up, why)
    assert up['resource_metadata']['agent_state'] == 'ok'
    assert by_meter['guest.agent.latency'][0]['counter_volume'] > 0

    sources = expected_sources(caps)
    collected = {name: {s['resource_metadata']['collected_by'] for s in found}
                 for name, found in by_meter.items() if not name.startswith('guest.agent.')}
    assert collected == {name: {source} for name, source in sources.items()}, why

    # Instance-level resources: Nova's identity, owner and flavor, the host.
    for s in samples:
        if s['resource_id'] != vm.uuid:
            continue
        md = s['resource_metadata']
        assert md['instance_id'] == vm.uuid and md['name'] == instance.name
        assert md['display_name'] == instance.display_name
        assert md['instance_type'] == vm_fixtures.NOVA_FLAVOR and md['memory_mb'] == 128
        assert md['instance_host'] == HOST
        assert md['host'] == discovery_libvirt.host_id(instance.project_id, HOST)
        assert md['state'] == 'running' and md['status'] == 'active'
        assert md['os_id'] == 'qga-e2e' and md['guest_hostname'] == 'qga-guest'
        assert md['agent_version'].startswith('7.')

    def one(meter: str, item: str | None = None) -> float:
        rid = vm.uuid if item is None else '%s-%s' % (vm.uuid, item)
        found = [s for s in by_meter[meter] if s['resource_id'] == rid]
        assert len(found) == 1, (meter, rid, by_meter[meter])
        return found[0]['counter_volume']

    # The data disk, as the guest's own statfs saw it at boot.  qemu-ga
    # reports used = (blocks - bfree) * bsize and total = used + what
    # non-root may still use (bavail), the figures df's Use% is made of.
    seen = vm.statfs('/mnt')
    assert seen is not None, vm.serial_text()
    used = (seen['blocks'] - seen['bfree']) * seen['bsize']
    total = used + seen['bavail'] * seen['bsize']
    assert one('guest.filesystem.used', '_2Fmnt') == used
    assert one('guest.filesystem.total', '_2Fmnt') == total
    assert one('guest.filesystem.usage', '_2Fmnt') == pytest.approx(100.0 * used / total)
    assert {s['resource_id'] for s in by_meter['guest.filesystem.used']} == {
        vm.uuid + '-_2Fmnt'}  # the initramfs root is not a block device

    memory_total = one('guest.memory.total')
    assert 64 < memory_total < 128  # 128 MiB domain; the kernel keeps some
    assert one('guest.memory.used') + one('guest.memory.available') == pytest.approx(
        memory_total, abs=1.0)
    assert one('guest.cpu.time') > 0
    assert one('guest.disk.read.bytes', 'vda') > 0  # mounting read it
    assert one('guest.disk.read.requests', 'vda') > 0
    assert one('guest.users') == 0  # nobody logs into the test guest
    assert one('guest.vcpus.online') == 1
    for meter in ('guest.load.1', 'guest.load.5', 'guest.load.15'):
        assert one(meter) >= 0
    network = {s['resource_id'] for name, found in by_meter.items()
               if name.startswith('guest.network.') for s in found}
    if HAVE_TUN:
        # eth0 has its IPv6 link-local address, so qemu-ga reports its
        # counters; lo is excluded by [qga_polling] interface_exclude.
        assert network == {vm.uuid + '-eth0'}
        assert one('guest.network.outgoing.packets', 'eth0') > 0
    else:
        assert network == set()
    return {name: found.pop() for name, found in collected.items()}


def check_delivered(run: OnceRun, bus: BusListener) -> None:
    """Every sample of the run reached the bus, identical to the file's."""
    in_file = {s['message_id']: s for s in run.samples}
    on_bus = bus.wait_for(set(in_file))
    assert set(on_bus) == set(in_file), 'missing on the bus: %s' % (set(in_file) - set(on_bus))
    for message_id, (publisher_id, event_type, sample) in on_bus.items():
        assert (publisher_id, event_type) == ('ceilometer.polling', 'telemetry.polling')
        assert sample == in_file[message_id]


# -- the tests, in order ---------------------------------------------------------

def test_hook_chain_adds_both_channels(healthy, socket_dir):
    """Nova's XML has no agent channel; after our hooks it has both, live too."""
    vm, instance = healthy.vm, healthy.instance
    nova = etree.fromstring(healthy.nova_xml.encode())
    assert nova.get('type') == 'qemu'
    assert nova.find('./metadata/{http://openstack.org/xmlns/libvirt/nova/1.1}instance') \
        is not None
    assert vm_fixtures.channel_paths(healthy.nova_xml) == {}

    agent_path = '/var/lib/libvirt/qemu/%s.%s.sock' % (STANDARD_CHANNEL, instance.name)
    monitor_path = os.path.join(socket_dir, '%s.sock' % vm.uuid)
    wanted = {STANDARD_CHANNEL: agent_path, MONITOR_CHANNEL: monitor_path}
    assert vm_fixtures.channel_paths(healthy.xml) == wanted
    assert vm.monitor_socket == monitor_path
    # libvirt took them as they are (the live XML of the running domain).
    assert vm_fixtures.channel_paths(vm.dom.XMLDesc(0)) == wanted


async def test_boot_to_first_sample(healthy, vm_launcher, libvirtd, tmp_path, e2e_timings):
    """Sweeps from dom.create() on until the guest's agent is up.

    In-process :class:`Pipeline`, ``transport = auto``.  Until the guest
    opens its ports libvirt shows the channels ``disconnected`` and the
    guest is reported down (``not_connected``) without being contacted.
    Then ``auto`` uses the dedicated monitor channel; for a sweep or so the
    standard port may open first, and the guest is then polled through
    libvirt until the monitor port opens too.
    """
    vm = healthy.vm
    conf = in_process_conf(libvirtd.uri, str(tmp_path / 's.jsonl'), 'auto')
    runner = pipeline_mod.Pipeline(conf)
    seen = []
    try:
        deadline = vm.started_at + 120
        first_up = None
        while True:
            result = await runner.run_once()
            report = report_of(result, healthy)
            if report is not None:
                session = runner.poller.sessions[vm.uuid]
                seen.append((round(time.monotonic() - vm.started_at, 2), report.state,
                             type(session.transport).__name__,
                             {c.target_name: c.state for c in report.guest.channels}))
                if report.up and first_up is None:
                    first_up = time.monotonic() - vm.started_at
                    names = {s.name for s in result.samples if s.resource_id == vm.uuid}
                    assert names >= {'guest.agent.up', 'guest.agent.latency',
                                     'guest.cpu.time'}, (names, seen)
                if report.up and session.channel.target_name == MONITOR_CHANNEL:
                    break
            assert time.monotonic() < deadline, (seen, vm_launcher.diagnostics(vm))
            await asyncio.sleep(0.1)
        e2e_timings['boot_to_first_sample_s'] = first_up
        assert isinstance(session.transport, transport_socket.SocketTransport), seen
        assert session.transport.path == vm.monitor_socket
        assert report.state == 'ok', (report.state, report.error)
    finally:
        await runner.close()
    states = [state for _, state, _, _ in seen]
    up_from = states.index('ok')
    assert set(states[:up_from]) <= {'not_connected'} and set(states[up_from:]) == {'ok'}, seen


async def test_command_latency_both_transports(healthy, libvirtd, libvirt_provider,
                                               e2e_timings):
    """Median of 50 guest-ping round trips through each transport.

    libvirt: qemuAgentCommand on the standard channel; socket: the poller's
    own connection to the monitor channel.  The two reach different agents:
    the monitor one refuses everything that is not read-only.
    """
    vm = healthy.vm
    conf = env_fixtures.poller_conf(libvirtd.uri)
    transports = {
        'libvirt': transport_libvirt.LibvirtTransport(vm.uuid, libvirt_provider, vm.uuid, conf),
        'socket': transport_socket.SocketTransport(vm.uuid, vm.monitor_socket,
                                                   COMMAND_TIMEOUT, 1 << 20),
    }
    medians = {}
    try:
        for name, qga in transports.items():
            await vm_fixtures.wait_for_agent(qga, vm.started_at)
            times = []
            for _ in range(50):
                started = time.perf_counter()
                assert await qga.execute('guest-ping') == {}
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            medians[name] = statistics.median(times)
            e2e_timings['nova_vm_%s_ping_median_ms' % name] = medians[name]
            e2e_timings['nova_vm_%s_ping_p95_ms' % name] = times[int(len(times) * 0.95) - 1]
        standard = capabilities.parse_guest_info(
            await transports['libvirt'].execute('guest-info'))
        monitor = capabilities.parse_guest_info(
            await transports['socket'].execute('guest-info'))
    finally:
        for qga in transports.values():
            await qga.close()
    assert standard.supports('guest-exec') and not monitor.supports('guest-exec')
    assert monitor.supports('guest-get-fsinfo') and monitor.supports('guest-file-read')
    assert all(m < 200 for m in medians.values()), medians


@pytest.mark.parametrize('transport', ['libvirt', 'socket'])
def test_once_to_bus_and_file(transport, healthy, poller, bus, agent_commands,
                              e2e_timings):
    """Every meter, right values, on the bus and in the file.

    ``libvirt``: the standard channel through qemuAgentCommand; ``socket``:
    the dedicated channel, directly.
    """
    run = poller.once(transport, notifier=True)
    assert (run.sweep.guests, run.sweep.up) == (1, 1), run.diagnostics()
    check_healthy(run, healthy, agent_commands)
    check_delivered(run, bus)
    e2e_timings['once_%s_sweep_s' % transport] = run.sweep.duration
    e2e_timings['once_%s_process_s' % transport] = run.wall


def test_service_on_the_bus(healthy, poller, bus, agent_commands, e2e_timings):
    """``qga-polling`` as deployed: the service, libvirt discovery, ``notifier://``.

    The console script with ``interval = 2`` and ``transport = auto``, the
    healthy guest alone (before the troubled ones boot).  Every sweep it
    logs reaches the bus complete -- every expected meter of the guest --
    and identical to what the file publisher wrote; no sample arrives
    twice; SIGTERM ends it with exit code 0 within seconds and leaves no
    process behind.
    """
    # Every expected meter in every sweep is what is checked below.
    conf = poller.conf('auto', notifier=True, interval=2,
                       collector_intervals='filesystem:0,vcpus:0')
    before = len(bus.notifications)
    stderr_path = conf.log_path + '.stderr'
    with open(stderr_path, 'w') as stderr:
        proc = poller.popen(conf, console=True, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while len(conf.sweeps()) < 3:
            assert proc.poll() is None, open(stderr_path).read()[-3000:]
            assert time.monotonic() < deadline, conf.log()[-3000:]
            time.sleep(0.05)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
        e2e_timings['service_bus_sigterm_to_exit_s'] = time.monotonic() - stopping
        leftovers = processes.session_pids(proc.pid)
    finally:
        stop_session(proc)
    why = 'rc %s\n--- stderr:\n%s\n--- log:\n%s' % (
        rc, open(stderr_path).read()[-3000:], conf.log()[-3000:])
    assert rc == 0, why
    assert e2e_timings['service_bus_sigterm_to_exit_s'] < 10, why
    assert leftovers == [], leftovers
    assert 'Traceback' not in conf.log() + open(stderr_path).read(), why
    assert 'qga-polling stopped' in conf.log(), why

    sweeps = conf.sweeps()
    assert len(sweeps) >= 3 and all((s.guests, s.up) == (1, 1) for s in sweeps), sweeps
    gaps = [b.started - a.started for a, b in zip(sweeps, sweeps[1:])]
    assert all(1.9 < g < 4 for g in gaps), gaps  # every interval, never sooner
    in_file = {s['message_id']: s for s in conf.samples()}
    on_bus = bus.wait_for(set(in_file))
    assert set(on_bus) == set(in_file), 'missing on the bus: %s' % (set(in_file) - set(on_bus))
    ours = [s for _, _, payload in bus.notifications[before:]
            for s in payload.get('samples', ())]
    ids = [s['message_id'] for s in ours]
    assert sorted(ids) == sorted(in_file), 'twice or unknown: %s' % [
        i for i, n in collections.Counter(ids).items() if n > 1 or i not in in_file]
    for message_id, (publisher_id, event_type, sample) in on_bus.items():
        assert (publisher_id, event_type) == ('ceilometer.polling', 'telemetry.polling')
        assert sample == in_file[message_id]
        assert verify_signature(sample, SECRET)

    # One timestamp per sweep: every logged sweep, complete, in order.
    by_sweep = collections.defaultdict(list)
    for s in in_file.values():
        by_sweep[s['timestamp']].append(s)
    groups = sorted(by_sweep.values(), key=lambda group: group[0]['monotonic_time'])
    assert [len(g) for g in groups] == [s.samples for s in sweeps], (groups, sweeps)
    meters = set(expected_sources(agent_commands)) | {'guest.agent.up', 'guest.agent.latency'}
    for group in groups:
        assert {s['resource_id'][:36] for s in group} == {healthy.vm.uuid}
        assert {s['counter_name'] for s in group} == meters
    e2e_timings['service_bus_sweeps'] = len(sweeps)
    e2e_timings['service_bus_samples'] = len(in_file)


def test_agentless_late_and_hung_guests(healthy, agent_commands, troubled, poller,
                                        vm_launcher, e2e_timings):
    """Guests without a working agent are down; the healthy one is polled on time.

    The first ``--once`` runs right after the three guests started: they
    are reported with ``guest.agent.up`` 0 (``not_connected``: libvirt
    shows their channels closed, so they are not even contacted) in the
    same sweep that brings every sample of the healthy guest.  Further runs
    (``backoff_initial = 0``) go on until the late agent answers.  Meanwhile
    the hung guest opens its ports and then never answers: it costs its
    sweep the command timeout once (guests are polled in parallel), is
    reported ``timeout``, and the healthy guest's samples are all there.
    """
    late, noagent, hung = troubled['late'], troubled['noagent'], troubled['hung']
    runs = []
    hung_sweeps = []
    late_up_s = None
    deadline = late.vm.started_at + LATE_DELAY + 90
    while late_up_s is None or not hung_sweeps:
        assert time.monotonic() < deadline, (vm_launcher.diagnostics(late.vm)
                                             + vm_launcher.diagnostics(hung.vm))
        run = poller.once('auto')
        runs.append(run)
        why = run.diagnostics()
        assert run.sweep.guests == 4, why
        assert run.sweep.duration < SWEEP_BOUND, why
        check_healthy(run, healthy, agent_commands)
        down = run.up(noagent)
        assert down['counter_volume'] == 0, why
        assert down['resource_metadata']['agent_state'] == 'not_connected', why
        stuck = run.up(hung)
        assert stuck['counter_volume'] == 0, why
        assert stuck['resource_metadata']['agent_state'] in ('not_connected', 'timeout'), why
        if stuck['resource_metadata']['agent_state'] == 'timeout':
            assert run.sweep.duration >= COMMAND_TIMEOUT - 0.1, why
            hung_sweeps.append(run.sweep.duration)
        late_up = run.up(late)
        if late_up['counter_volume'] == 1:
            assert late_up['resource_metadata']['agent_state'] == 'ok', why
            if late_up_s is None:
                late_up_s = time.monotonic() - late.vm.started_at
                assert {s['counter_name'] for s in run.of(late)} >= {
                    'guest.agent.latency', 'guest.cpu.time', 'guest.memory.total',
                    'guest.vcpus.online'}, why
        else:
            assert late_up_s is None, why  # once up, it stays up
            assert late_up['resource_metadata']['agent_state'] == 'not_connected', why

    first = runs[0]
    assert [first.up(g)['resource_metadata']['agent_state'] for g in (noagent, late)] == [
        'not_connected'] * 2, first.diagnostics()
    # The agents started late by the guest's own clock (its console line
    # carries its uptime), whatever the host's load did to the timing seen
    # from here; the first run above found them not connected.
    started = re.search(r'agents-started uptime=([0-9.]+)', late.vm.serial_text())
    assert started and float(started.group(1)) >= LATE_DELAY, late.vm.serial_text()[-2000:]
    assert 'agents-disabled' in noagent.vm.serial_text()
    assert 'agents-hung' in hung.vm.serial_text()
    e2e_timings['late_agent_first_sample_s'] = late_up_s
    e2e_timings['sweep_with_down_guests_s'] = first.sweep.duration
    e2e_timings['sweep_with_hung_guest_max_s'] = max(hung_sweeps)
    e2e_timings['sweeps_with_troubled_guests'] = len(runs)


def test_destroyed_mid_sweep(healthy, agent_commands, troubled, poller, e2e_timings):
    """A domain destroyed while the service sweeps: no crash, it just goes.

    ``qga-polling`` runs as a service (``interval = 1``).  Each sweep waits
    the command timeout for the hung guest, so destroying that guest a
    second after a sweep ended hits the next sweep while it waits on the
    guest's socket.  Then the log has no traceback, the following sweeps no
    longer list the guest while the healthy one stays up throughout, and
    SIGTERM stops the service (and every process it started) with exit
    code 0 within seconds.
    """
    victim = troubled['hung'].vm
    conf = poller.conf('auto')
    stderr_path = conf.log_path + '.stderr'
    with open(stderr_path, 'w') as stderr:
        proc = poller.popen(conf, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while sum(s.duration >= COMMAND_TIMEOUT - 0.1 for s in conf.sweeps()) < 2:
            assert proc.poll() is None, open(stderr_path).read()
            assert time.monotonic() < deadline, conf.log()[-3000:]
            time.sleep(0.05)
        # Sweeps follow each other at once (each takes over the interval);
        # aim at the middle of the next one.
        time.sleep(max(0.0, conf.sweeps()[-1].ended + COMMAND_TIMEOUT / 2 - time.time()))
        destroy_started = time.time()
        victim.dom.destroy()
        destroyed = time.time()
        e2e_timings['destroy_call_s'] = destroyed - destroy_started

        # Two whole sweeps after the destroy call returned: the event the
        # assertions below are about (not a count of sweeps that merely
        # ended later, one of which may have started before it returned).
        deadline = time.monotonic() + 60
        while sum(s.started > destroyed + 0.02 for s in conf.sweeps()) < 2:
            assert proc.poll() is None, open(stderr_path).read()
            assert time.monotonic() < deadline, conf.log()[-3000:]
            time.sleep(0.05)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
        e2e_timings['service_sigterm_to_exit_s'] = time.monotonic() - stopping
        leftovers = processes.session_pids(proc.pid)
    finally:
        stop_session(proc)
    assert rc == 0, open(stderr_path).read()[-3000:]
    assert e2e_timings['service_sigterm_to_exit_s'] < 10
    assert leftovers == [], leftovers
    log = conf.log()
    assert 'Traceback' not in log + open(stderr_path).read(), log[-5000:]
    assert 'qga-polling stopped' in log

    sweeps = conf.sweeps()
    hit = [s for s in sweeps if s.started <= destroy_started <= s.ended]
    assert len(hit) == 1 and hit[0].guests == 4, (destroy_started, sweeps)
    # It ended early: the guest's socket closed under the waiting read.
    e2e_timings['mid_sweep_destroy_sweep_s'] = hit[0].duration

    # One group of samples per sweep (one timestamp each), in log order.
    by_sweep = collections.defaultdict(list)
    for s in conf.samples():
        by_sweep[s['timestamp']].append(s)
    ordered = sorted(by_sweep.values(), key=lambda group: group[0]['monotonic_time'])
    assert len(ordered) == len(sweeps), (len(ordered), sweeps)
    later = 0
    for sweep, group in zip(sweeps, ordered):
        ups = {s['resource_id']: s['counter_volume'] for s in group
               if s['counter_name'] == 'guest.agent.up'}
        assert ups.get(healthy.vm.uuid) == 1, ups  # polled on time throughout
        if sweep is hit[0]:
            assert ups[victim.uuid] == 0, ups
        elif sweep.started > destroyed + 0.02:  # log times are to the ms
            later += 1
            assert sweep.guests == 3 and victim.uuid not in ups, (sweep, ups)
    assert later >= 2, sweeps


async def test_paused_and_resumed(healthy, agent_commands, libvirtd, tmp_path):
    """Paused: reported ``paused``, up=0, not contacted; resumed: up again.

    One in-process runner per transport; each keeps its session (and its
    connection) across the pause.
    """
    vm = healthy.vm
    runners = {t: pipeline_mod.Pipeline(
        in_process_conf(libvirtd.uri, str(tmp_path / ('%s.jsonl' % t)), t))
        for t in ('socket', 'libvirt')}
    try:
        transports = {}
        for name, runner in runners.items():
            report = report_of(await runner.run_once(), healthy)
            assert report.up, (name, report.state, report.error)
            transports[name] = runner.poller.sessions[vm.uuid].transport
        await asyncio.to_thread(vm.dom.suspend)
        try:
            for name, runner in runners.items():
                started = time.monotonic()
                result = await runner.run_once()
                took = time.monotonic() - started
                report = report_of(result, healthy)
                assert not report.up and report.state == 'paused', (name, report)
                assert took < COMMAND_TIMEOUT, (name, took)  # not even asked
                ups = [s for s in result.samples
                       if s.resource_id == vm.uuid and s.name == 'guest.agent.up']
                assert [(s.volume, s.resource_metadata['agent_state'],
                         s.resource_metadata['state']) for s in ups] == [(0, 'paused', 'paused')]
        finally:
            await asyncio.to_thread(vm.dom.resume)
        for name, runner in runners.items():
            report = report_of(await runner.run_once(), healthy)
            assert report.up and report.state == 'ok', (name, report.state, report.error)
            assert runner.poller.sessions[vm.uuid].transport is transports[name]
    finally:
        for runner in runners.values():
            await runner.close()


async def test_frozen_then_thawed(healthy, agent_commands, libvirtd, tmp_path):
    """A Nova quiesce on the real guest: frozen while frozen, all data after.

    The freeze is libvirt's ``fsFreeze`` (what Nova's quiesce calls) on the
    standard agent *inside the VM*; the host is never frozen.  One
    in-process runner on that agent, new when the freeze starts, so that
    its first guest-info is the frozen agent's: real qemu-ga 7.2 then lists
    every non-freeze-safe command as disabled (checked here too).  Before
    the fix the guest was reported ``ok`` with two samples, and the sweeps
    after the thaw had no filesystem data (those capabilities were cached
    for ten minutes); the first sweep after the thaw must not trust them.
    """
    vm = healthy.vm
    runner = pipeline_mod.Pipeline(
        in_process_conf(libvirtd.uri, str(tmp_path / 'frozen.jsonl'), 'libvirt'))

    def fs_samples(result):
        return {s.name for s in result.samples
                if s.resource_id == vm.uuid + '-_2Fmnt'}
    try:
        frozen_count = await asyncio.to_thread(vm.dom.fsFreeze)
        assert frozen_count >= 1
        try:
            info = json.loads(await asyncio.to_thread(
                libvirt_qemu.qemuAgentCommand, vm.dom,
                json.dumps({'execute': 'guest-info'}), 5, 0))['return']
            enabled = {c['name'] for c in info['supported_commands'] if c['enabled']}
            assert enabled <= freeze.SAFE, enabled
            sweeps = [await runner.run_once() for _ in range(2)]
        finally:
            await asyncio.to_thread(vm.dom.fsThaw)
        for result in sweeps:
            report = report_of(result, healthy)
            assert report.up and report.state == 'frozen', (report.state, report.error)
            assert fs_samples(result) == set()
        after = report_of(thawed := await runner.run_once(), healthy)
        assert after.state == 'ok', (after.state, after.error)
        assert fs_samples(thawed) == {'guest.filesystem.used', 'guest.filesystem.total',
                                      'guest.filesystem.usage'}
    finally:
        await runner.close()
