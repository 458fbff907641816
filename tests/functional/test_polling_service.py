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

"""``qga-polling`` as deployed: the service (no ``--once``) on the bus.

Real parts: the installed ``qga-polling`` console script (``.venv/bin``) as
its own process with ``notifier://``, three qemu-ga stand-in guests (static
discovery), RabbitMQ in a virtual host of this module's own, and an
oslo.messaging notification listener on exchange ``ceilometer``, topic
``notifications``, the target Ceilometer's notification agent listens on.

What is checked: the service starts whatever its modules import first
(``oslo_service`` fixes its backend on the first import of
``oslo_messaging``); it sweeps every ``interval`` seconds; every sweep it
logs reaches the bus complete (every guest, every catalogue meter, exactly
the logged count) and no sample twice; SIGTERM ends it with exit code 0
within seconds, with what it swept delivered.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any
import uuid

from ceilometer.publisher.utils import verify_signature
from oslo_config import cfg
import oslo_messaging
import pytest

from tests.fixtures.agents.qga_standin import StandinFleet
from tests.fixtures import processes as procs
from tests.fixtures import rabbit
from tests.fixtures.static_guests import standin_meters

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
UUIDS = ['33333333-3333-4333-8333-%012d' % i for i in range(1, 4)]
HUNG = '33333333-3333-4333-8333-000000000009'
SECRET = 'service-test-secret'
INTERVAL = 2
SHUTDOWN_TIMEOUT = 3
#: SIGTERM to exit: the running sweep's bound plus flushing and the launcher
STOP_BOUND = 10.0
SAMPLE_KEYS = {'source', 'counter_name', 'counter_type', 'counter_unit',
               'counter_volume', 'user_id', 'user_name', 'project_id',
               'project_name', 'resource_id', 'timestamp', 'resource_metadata',
               'message_id', 'monotonic_time', 'message_signature'}
_SWEEP_RE = re.compile(r'^(\S+ \S+) .*Sweep: (\d+) guests, (\d+) up, (\d+) samples '
                       r'in ([\d.]+) s(?:, \d+ legacy \(no agent channel\))?$',
                       re.MULTILINE)


# -- the bus -----------------------------------------------------------------

class BusCounter:
    """Notification endpoint: keeps every sample, as the notification agent gets it."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, str, dict[str, Any]]] = []
        self._cond = threading.Condition()
        #: publishes the markers of :meth:`sync` (set by the fixture)
        self.notifier: oslo_messaging.Notifier | None = None

    def sample(self, ctxt: Any, publisher_id: str, event_type: str, payload: dict,
               metadata: dict) -> Any:
        with self._cond:
            self.notifications.append((publisher_id, event_type, payload))
            self._cond.notify_all()
        return oslo_messaging.NotificationResult.HANDLED

    def samples(self) -> list[dict[str, Any]]:
        """Every sample received so far, in arrival order."""
        with self._cond:
            return [s for _, _, p in self.notifications for s in p.get('samples', ())]

    def wait_count(self, predicate: Any, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``predicate(samples)`` holds (or the timeout); the samples."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [s for _, _, p in self.notifications for s in p.get('samples', ())]
                left = deadline - time.monotonic()
                if predicate(found) or left <= 0:
                    return found
                self._cond.wait(min(left, 0.5))

    def sync(self, timeout: float = 20) -> list[dict[str, Any]]:
        """Every sample published before now, once all were consumed.

        Sends a marker after them on the same exchange and topic and waits
        for it: a sample sent twice is then among those returned.
        """
        assert self.notifier is not None
        marker = uuid.uuid4().hex
        self.notifier.sample({}, 'qga.test.marker', {'marker': marker, 'samples': []})
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(p.get('marker') == marker for _, _, p in self.notifications):
                left = deadline - time.monotonic()
                assert left > 0, 'the marker did not come back within %ss' % timeout
                self._cond.wait(min(left, 0.5))
        return self.samples()

    def clear(self) -> None:
        """Forget what was received (between tests)."""
        with self._cond:
            self.notifications.clear()


@pytest.fixture(scope='module')
def bus_url(rabbit_vhost: str) -> str:
    """The module's own virtual host."""
    return rabbit.vhost_url(rabbit_vhost)


@pytest.fixture(scope='module')
def bus_listener(bus_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A listener on exchange ``ceilometer``, topic ``notifications``."""
    # The markers of BusCounter.sync() go to the exchange the service
    # publishes on: the transport takes its default exchange when it is
    # made, from the configuration (not from the process-wide default that
    # set_transport_defaults() would change).
    conf_file = tmp_path_factory.mktemp('bus') / 'bus.conf'
    conf_file.write_text('[DEFAULT]\ncontrol_exchange = ceilometer\n')
    conf = cfg.ConfigOpts()
    conf(['--config-file', str(conf_file)], project='qga-service-test',
         default_config_files=[], default_config_dirs=[])
    transport = oslo_messaging.get_notification_transport(conf, url=bus_url)
    endpoint = BusCounter()
    endpoint.notifier = oslo_messaging.Notifier(
        transport, publisher_id='qga.test', driver='messagingv2', topics=['notifications'])
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications', exchange='ceilometer')],
        [endpoint], executor='threading', pool='qga-service-test')
    listener.start()
    try:
        yield endpoint
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


@pytest.fixture
def bus(bus_listener: BusCounter) -> BusCounter:
    """The module's listener, emptied for each test."""
    bus_listener.clear()
    return bus_listener


@pytest.fixture(scope='module')
def fleet() -> Any:
    """Three real qemu-ga stand-in guests for the whole module."""
    with StandinFleet(3) as guests:
        yield guests


# -- the service ---------------------------------------------------------------

def write_conf(workdir: str, fleet: Any, transport_url: str, publishers: list[str],
               hung: str | None = None) -> tuple[str, str]:
    """A service configuration; (conf path, log path).

    :param hung: socket of an agent that never answers (instance ``HUNG``)
    """
    path = os.path.join(workdir, 'qga-polling.conf')
    log = os.path.join(workdir, 'qga-polling.log')
    guests = ','.join('%s=%s' % (UUIDS[i], g.socket) for i, g in enumerate(fleet))
    if hung:
        guests += ',%s=%s' % (HUNG, hung)
    with open(path, 'w') as f:
        f.write(f"""[DEFAULT]
transport_url = {transport_url}
log_file = {log}
[qga_polling]
discovery = static
transport = socket
publishers = {','.join(publishers)}
interval = {INTERVAL}
# Every meter in every sweep is what check_run counts (the schedule by
# interval has tests/functional/test_schedule.py).
collector_intervals = filesystem:0,vcpus:0
command_timeout = 1
guest_budget = 5
shutdown_timeout = {SHUTDOWN_TIMEOUT}
backoff_initial = 0
[static_discovery]
guests = {guests}
[publisher]
telemetry_secret = {SECRET}
""")
    return path, log


def logged_sweeps(log_path: str) -> list[tuple[float, int, int, int, float]]:
    """(start wall clock, guests, up, samples, duration) of every ``Sweep:`` line.

    The start is the line's time less the sweep's duration (to about 10 ms).
    """
    try:
        with open(log_path, errors='replace') as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [(datetime.datetime.strptime(m.group(1), '%Y-%m-%d %H:%M:%S.%f').timestamp()
             - float(m.group(5)), int(m.group(2)), int(m.group(3)), int(m.group(4)),
             float(m.group(5)))
            for m in _SWEEP_RE.finditer(text)]


def run_service(argv: list[str], log_path: str, bus: BusCounter, sweeps: int = 3,
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start the service, wait for ``sweeps`` sweeps on the bus, SIGTERM it.

    :returns: rc, stop time, stderr, the logged sweeps and the bus samples
    """
    stderr_path = log_path + '.stderr'
    with open(stderr_path, 'w') as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr, cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30 + sweeps * INTERVAL * 2
        while len(logged_sweeps(log_path)) < sweeps:
            if proc.poll() is not None:
                break
            assert time.monotonic() < deadline, open(log_path).read()[-3000:]
            time.sleep(0.05)
        # Published right after the log line: wait until the bus has them.
        expected = sum(s[3] for s in logged_sweeps(log_path)[:sweeps])
        bus.wait_count(lambda found: len(found) >= expected, 20)
        stopping = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(STOP_BOUND + 5)
        stop_s = time.monotonic() - stopping
        leftovers = procs.session_pids(proc.pid)
    finally:
        if proc.poll() is None:
            procs.stop_pid(proc.pid, timeout=5, group=True)
            proc.wait(10)
        for pid in procs.session_pids(proc.pid):
            procs.stop_pid(pid, timeout=5)
    with open(stderr_path, errors='replace') as f:
        stderr_text = f.read()
    # The service flushed before exiting: all it sent is on the bus.
    return {'rc': rc, 'stop_s': stop_s, 'leftovers': leftovers, 'stderr': stderr_text,
            'sweeps': logged_sweeps(log_path), 'samples': bus.sync(),
            'log': open(log_path, errors='replace').read()}


def check_run(run: dict[str, Any], sweeps: int = 3, hung: bool = False) -> None:
    """Exit 0 in time, every logged sweep complete on the bus, nothing twice.

    :param hung: the ``HUNG`` guest is configured too (reported down)
    """
    why = 'rc %s\n--- stderr:\n%s\n--- log:\n%s' % (run['rc'], run['stderr'][-3000:],
                                                    run['log'][-3000:])
    assert run['rc'] == 0, why
    assert run['stop_s'] < STOP_BOUND, (run['stop_s'], why)
    assert run['leftovers'] == [], 'left running: %s' % run['leftovers']
    assert 'Traceback' not in run['log'] + run['stderr'], why
    assert 'qga-polling stopped' in run['log'], why
    assert len(run['sweeps']) >= sweeps, why
    started = [s[0] for s in run['sweeps']]
    gaps = [b - a for a, b in zip(started, started[1:])]
    # Every interval, never sooner (a slow sweep only delays the next one).
    assert all(INTERVAL - 0.1 < g < INTERVAL + 2 for g in gaps), gaps

    samples = run['samples']
    ids = [s['message_id'] for s in samples]
    assert len(ids) == len(set(ids)), 'delivered twice: %s' % [
        i for i, n in collections.Counter(ids).items() if n > 1]
    for s in samples:
        assert set(s) == SAMPLE_KEYS, s
        assert verify_signature(s, SECRET), s
    # One timestamp per sweep: group the bus's samples into sweeps.
    by_sweep = collections.defaultdict(list)
    for s in samples:
        by_sweep[s['timestamp']].append(s)
    groups = sorted(by_sweep.values(), key=lambda g: g[0]['monotonic_time'])
    assert [len(g) for g in groups] == [s[3] for s in run['sweeps']], why
    meters = standin_meters()
    for group, (_, guests, up, _, _) in zip(groups, run['sweeps']):
        assert (guests, up) == (3 + hung, 3), why
        per_guest = collections.defaultdict(set)
        for s in group:
            per_guest[s['resource_id'][:36]].add(s['counter_name'])
        assert set(per_guest) == set(UUIDS) | ({HUNG} if hung else set()), per_guest.keys()
        for instance_id, names in per_guest.items():
            if instance_id == HUNG:
                assert names == {'guest.agent.up'}, names
                (down,) = [s for s in group if s['resource_id'] == HUNG]
                assert down['counter_volume'] == 0
                assert down['resource_metadata']['agent_state'] == 'timeout', down
            else:
                assert names == meters, (instance_id, meters ^ names)


# -- the tests -------------------------------------------------------------------

def test_service_publishes_every_sweep_and_stops_on_sigterm(fleet, bus, bus_url, tmp_path):
    """The console script, ``notifier://``, three sweeps, SIGTERM."""
    conf, log = write_conf(str(tmp_path), fleet, bus_url, ['notifier://'])
    run = run_service([BIN, '--config-file', conf], log, bus)
    check_run(run)


def test_service_with_file_and_notifier_publishers(fleet, bus, bus_url, tmp_path):
    """Both publishers together: the same samples in the file and on the bus."""
    out = os.path.join(str(tmp_path), 'samples.jsonl')
    conf, log = write_conf(str(tmp_path), fleet, bus_url, ['file://' + out, 'notifier://'])
    run = run_service([BIN, '--config-file', conf], log, bus)
    check_run(run)
    with open(out) as f:
        in_file = {s['message_id']: s for s in map(json.loads, f) if s}
    assert in_file == {s['message_id']: s for s in run['samples']}


def test_sigterm_mid_sweep_delivers_that_sweep(fleet, bus, bus_url, tmp_path, fake_agent):
    """SIGTERM while a sweep waits on a hung guest: it ends, is delivered, exit 0.

    The hung agent (``tests/fixtures/agents/fake_agent.py --mode hang``) holds every sweep
    for the command timeout (1 s of the 2 s interval); SIGTERM comes 0.4 s
    into the fourth sweep, which then finishes within ``shutdown_timeout``.
    """
    hung = fake_agent('hang')
    conf, log = write_conf(str(tmp_path), fleet, bus_url, ['notifier://'], hung=hung.socket)
    stderr_path = log + '.stderr'
    with open(stderr_path, 'w') as stderr:
        proc = subprocess.Popen([BIN, '--config-file', conf], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(logged_sweeps(log)) < 3:
            assert proc.poll() is None, open(stderr_path).read()[-3000:]
            assert time.monotonic() < deadline, open(log).read()[-3000:]
            time.sleep(0.05)
        next_start = logged_sweeps(log)[-1][0] + INTERVAL
        time.sleep(max(0.0, next_start + 0.4 - time.time()))
        signalled = time.time()
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(STOP_BOUND + 5)
        stop_s = time.monotonic() - stopping
        leftovers = procs.session_pids(proc.pid)
    finally:
        if proc.poll() is None:
            procs.stop_pid(proc.pid, timeout=5, group=True)
            proc.wait(10)
        for pid in procs.session_pids(proc.pid):
            procs.stop_pid(pid, timeout=5)
    found = logged_sweeps(log)
    run = {'rc': rc, 'stop_s': stop_s, 'leftovers': leftovers,
           'stderr': open(stderr_path, errors='replace').read(),
           'sweeps': found, 'samples': bus.sync(), 'log': open(log, errors='replace').read()}
    # The last sweep was running when the signal came.
    assert found[-1][0] < signalled < found[-1][0] + found[-1][4], (found, signalled)
    assert len(found) == 4, found
    check_run(run, sweeps=4, hung=True)


#: Imports a process may do before it runs ``qga-polling``'s main, worst first,
#: and whether main() has to restart in a fresh interpreter: ``oslo_messaging``
#: (it imports ``oslo_service.service``) before our package fixes eventlet for good.
IMPORT_ORDERS = {
    'oslo_messaging_first': (['oslo_messaging'], True),
    'notifier_publisher_first': (['ceilometer_qga.publishers.notifier'], True),
    'pipeline_then_publishers': (['ceilometer_qga.pipeline', 'ceilometer_qga.publishers'],
                                 False),
}


@pytest.mark.parametrize('order', sorted(IMPORT_ORDERS))
def test_service_starts_whatever_is_imported_first(order, fleet, bus, bus_url, tmp_path):
    """A fresh interpreter imports modules in a bad order, then runs main().

    The working tree first on the path, as the rest of the suite runs it.
    """
    imports, restarts = IMPORT_ORDERS[order]
    conf, log = write_conf(str(tmp_path), fleet, bus_url, ['notifier://'])
    code = ''.join('import %s; ' % name for name in imports)
    code += 'import sys; from ceilometer_qga.cmd import polling; sys.exit(polling.main())'
    path = os.environ.get('PYTHONPATH')
    env = dict(os.environ, PYTHONPATH=ROOT + (os.pathsep + path if path else ''))
    run = run_service([sys.executable, '-c', code, '--config-file', conf], log, bus,
                      sweeps=2, env=env)
    check_run(run, sweeps=2)
    assert ('restarting qga-polling in a fresh interpreter' in run['log']) is restarts


def test_restart_happens_once_at_most(fleet, bus_url, tmp_path):
    """If even the fresh interpreter starts on eventlet, exit 1 saying why."""
    conf, log = write_conf(str(tmp_path), fleet, bus_url, ['notifier://'])
    code = ('import oslo_messaging; import sys; from ceilometer_qga.cmd import polling; '
            'sys.exit(polling.main())')
    env = dict(os.environ, PYTHONPATH=ROOT, QGA_POLLING_RESTARTED='1')
    proc = subprocess.run([sys.executable, '-c', code, '--config-file', conf], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    with open(log) as f:
        text = f.read()
    assert 'even in a fresh interpreter' in text, text
    assert 'Sweep:' not in text
