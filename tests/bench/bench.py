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

"""``make bench``: the poller at fleet scale against two baselines, one run.

For each fleet -- N in {100, 1000} fake guests
(:mod:`tests.bench.fake_fleet`, one process answering with replies recorded
from real qemu-ga 7.2) and N = 100 real qemu-ga processes
(:mod:`tests.fixtures.agents.qga_standin`), each with 0% and 5% silent guests
(every 20th accepts and never answers) -- it measures:

``ours``
    The installed ``qga-polling`` console script as a service
    (``--config-file``, static discovery, socket transport, ``file://``
    publisher), with ``command_timeout`` 1 s, ``guest_budget`` 3 s,
    ``max_concurrent_guests`` 1000 and ``backoff_initial`` 0 (so that every
    sweep faces the silent guests, as the baselines do), every collector in
    every sweep (as the baselines). One warm-up sweep, then ``--sweeps``
    measured ones (``--long-sweeps``, 20, on the largest fake fleet with
    silent guests: its RSS growth is over 20 sweeps), ``interval`` apart
    (2 s + 1 s per 250 guests). Sweep wall is the
    median of the durations the service logs (``Sweep published: ... in X
    s``: polling, signing and publishing); CPU is read from
    ``/proc/PID/stat`` of the worker process as each of those lines appears
    (the bench polls the log every 20 ms), so the start-up and the warm-up
    sweep are not counted: CPU per guest per sweep = CPU over the measured
    sweeps / (sweeps x N). Peak RSS is the worker's VmHWM; RSS growth is
    VmRSS after the last sweep minus after the warm-up. Samples and bytes
    per sweep are counted in the publisher's output file (one signed sample
    per line, what the notifier would put in ``payload.samples``);
    notifications per sweep are those the ``notifier://`` publisher would
    send for them (batches of 50).
``ours, default schedule``
    On the same fleet: the service with the collectors' declared intervals
    (filesystem and vcpus every 300 s, so absent from the measured sweeps)
    instead of every collector in every sweep -- what an operator's default
    configuration costs; 5 measured sweeps.
``ours, notifier://``
    On the largest fake fleet with silent guests (``--no-bus`` skips it):
    the same service publishing with ``notifier://`` to a RabbitMQ virtual
    host of its own, 3 measured sweeps; :class:`BusCounter` counts the
    notifications and their bytes on the bus.  A line under the ratios
    splits its CPU: ours with ``file://``, the JSON oslo.messaging and
    kombu write for the same samples (:func:`bus_json_cost`, the last
    ``file://`` sweep encoded again as the rabbit driver encodes it), and
    the rest of the bus.
``ours in ceilometer-polling``
    On the largest fake fleet with silent guests (``--no-plugin`` skips
    it): the real ``ceilometer-polling`` console script with our pollsters
    (``polling.yaml`` source ``guest.*``), Ceilometer's ``local_instances``
    discovery and ours reading the same libvirt (a ``test:///`` node file
    of Nova domains built by Nova's own code, each monitor channel on a
    fleet socket), Ceilometer signing each sample once (``[publisher]
    telemetry_secret``) and its notifier on oslo.messaging's ``noop``
    driver; 3 measured polling cycles after one warm-up.  A cycle ends when
    Ceilometer has logged ``Finished polling pollster`` for each of our
    pollsters; CPU is that of the agent's whole process tree.
``Ceilometer floor``
    Right after it, on the same fleet, node and configuration: the same
    agent with :mod:`tests.bench.floor_pollster` instead of ours, one
    pollster per meter of ours yielding as many samples of the same size
    per cycle as ours did in a ``qga-polling --once`` sweep of the fleet,
    without asking any agent.  That is Ceilometer's own per-sample cost
    (building, signing, handing to the notifier), which no pollster avoids;
    the table's line under the ratios splits the plugin row into this floor
    and what our pollsters add.
``sequential`` / ``threads``
    :mod:`tests.bench.bench_baselines` on the same fleet and configuration, as a
    process of its own: the same commands and samples, blocking sockets,
    guests one after another or a thread each.  Wall and CPU per sweep are
    its own (``time.process_time``); with a single sweep (the sequential
    client over silent guests is slow) that sweep is its steady state.

After the ratios: a warning for any fleet where ours published fewer
samples than a baseline (its figures would flatter it), and one line per
target of issue 10 measured in the run, met or not.  Then two micro rows:
guest-ping latency through our transport against a blocking client, and
signing one sample against Ceilometer's ``compute_signature``.  The table
is printed and also written as JSON to the file the run names; ``--profile``
adds a py-spy profile of the
1000-guest service run (top entries by own time).

Usage: ``python -m tests.bench.bench [--sizes 100,1000] [--real 100]
[--sweeps 5] [--profile] [--json FILE]``; ``--smoke`` is a seconds-long run
(5 guests, 1 sweep) for the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid

from tests.bench import fake_fleet
from tests.fixtures.agents.qga_standin import RawClient
from tests.fixtures.agents.qga_standin import StandinFleet
from tests.fixtures import processes

BIN_DIR = os.path.dirname(sys.executable)
QGA_POLLING = os.path.join(BIN_DIR, 'qga-polling')
#: run as ``python -m`` from the checkout (:func:`processes.python_module`)
BASELINES = 'tests.bench.bench_baselines'
CLK_TCK = os.sysconf('SC_CLK_TCK')
SILENT_EVERY = 20
COMMAND_TIMEOUT = 1.0
GUEST_BUDGET = 3.0
MAX_CONCURRENT = 1000
#: samples per notification of the notifier:// publisher (its default)
NOTIFIER_BATCH = 50
SECRET = 'bench-secret'
#: the rows of our pollsters inside ceilometer-polling, and of the floor
PLUGIN = 'ours in ceilometer-polling'
FLOOR = 'Ceilometer floor'
#: the service's per-sweep lines (ceilometer_qga/poller.py, runner.py)
POLL_LINE = re.compile(r'Sweep: (\d+) guests, (\d+) up, (\d+) samples in '
                       r'([\d.]+) s')
#: Ceilometer's line after each pollster (ceilometer/polling/manager.py)
FINISHED_LINE = re.compile(r'Finished polling pollster (\S+)')
PUBLISHED_LINE = re.compile(r'Sweep published: (\d+) samples to \d+ '
                            r'publisher\(s\) in ([\d.]+) s')


# -- fleets ----------------------------------------------------------------

class Fleet:
    """N guest sockets, every 20th silent when asked; a context manager.

    ``kind`` 'fake': one fake-fleet process.  'real': real qemu-ga
    stand-ins, with the silent ones served by a fake-fleet process whose
    guests are all silent (a real agent cannot be made to hang).
    """

    def __init__(self, kind: str, count: int, silent: bool,
                 workdir: str) -> None:
        self.kind, self.count, self.silent = kind, count, silent
        self.workdir = workdir
        self._fake: fake_fleet.FakeFleet | None = None
        self._real: StandinFleet | None = None
        self.sockets: list[str] = []

    @property
    def label(self) -> str:
        """E.g. ``1000 fake, 50 silent``."""
        every = SILENT_EVERY if self.silent else 0
        return '%d %s, %d silent' % (self.count, self.kind, sum(
            fake_fleet.is_silent(i, every) for i in range(self.count)))

    def __enter__(self) -> Fleet:
        every = SILENT_EVERY if self.silent else 0
        if self.kind == 'fake':
            self._fake = fake_fleet.FakeFleet(self.workdir, self.count,
                                              every).start()
            self.sockets = self._fake.sockets
            return self
        silent = [i for i in range(self.count)
                  if fake_fleet.is_silent(i, every)]
        if silent:
            hung = os.path.join(self.workdir, 'hung')
            os.makedirs(hung)
            self._fake = fake_fleet.FakeFleet(hung, len(silent), 1).start()
        self._real = StandinFleet(self.count - len(silent),
                                  workdir=os.path.join(self.workdir, 'r'))
        os.makedirs(self._real.workdir)
        self._real.start(timeout=60)
        real = iter(g.socket for g in self._real)
        hung_socks = iter(self._fake.sockets if self._fake else [])
        self.sockets = [next(hung_socks) if i in silent else next(real)
                        for i in range(self.count)]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._real is not None:
            self._real.stop()
        if self._fake is not None:
            self._fake.stop()


def write_config(path: str, sockets: list[str], interval: int,
                 publisher_file: str, transport_url: str | None = None,
                 every_sweep: bool = True) -> None:
    """The qga-polling configuration every measurement of a fleet uses.

    The service logs to ``path`` with ``.log`` for ``.conf``.  With
    ``transport_url``, the publisher is ``notifier://`` on that bus instead
    of the file.  ``every_sweep`` runs every collector in every sweep, as
    the baselines do; False keeps the collectors' declared intervals
    (filesystem and vcpus every 300 s).
    """
    publisher = ('notifier://' if transport_url
                 else 'file://' + publisher_file)
    bus = 'transport_url = %s' % transport_url if transport_url else ''
    log = os.path.splitext(path)[0] + '.log'
    schedule = ('collector_intervals = filesystem:0,vcpus:0' if every_sweep
                else '')

    guests = ','.join('%08x-0000-4000-8000-%012d=%s' % (0xbe7c, i, s)
                      for i, s in enumerate(sockets))
    with open(path, 'w') as conf:
        conf.write(f"""[DEFAULT]
log_file = {log}
{bus}
[qga_polling]
discovery = static
transport = socket
publishers = {publisher}
interval = {interval}
# every collector in every sweep: the baselines poll them all each time
{schedule}
command_timeout = {COMMAND_TIMEOUT}
guest_budget = {GUEST_BUDGET}
max_concurrent_guests = {MAX_CONCURRENT}
backoff_initial = 0
shutdown_timeout = 5
[static_discovery]
guests = {guests}
[publisher]
telemetry_secret = {SECRET}
""")


# -- the bus -----------------------------------------------------------------

RABBIT = 'guest:guest@127.0.0.1:5672'


class BusCounter:
    """Counts the notifications (and their bytes) our service puts on a bus.

    A RabbitMQ virtual host of its own (made and deleted with
    ``rabbitmqctl``), and a consumer on a queue of its own bound like
    Ceilometer's notification agent's: exchange ``ceilometer``, routing key
    ``notifications.sample``.  Bytes are the AMQP message bodies (the
    oslo.messaging 2.0 envelope around ``payload.samples``).
    """

    def __init__(self) -> None:
        self.vhost = 'qga-bench-%s' % os.urandom(5).hex()
        self.count = 0
        self.bytes = 0
        self._stop = False
        self._thread: Any = None
        self._conn: Any = None

    @property
    def transport_url(self) -> str:
        """The oslo.messaging URL of the vhost."""
        return 'rabbit://%s/%s' % (RABBIT, self.vhost)

    def __enter__(self) -> BusCounter:
        import threading

        import kombu
        _rabbitmqctl('add_vhost', self.vhost)
        try:
            _rabbitmqctl('set_permissions', '-p', self.vhost, 'guest', '.*',
                         '.*', '.*')
            self._conn = kombu.Connection('amqp://%s/%s'
                                          % (RABBIT, self.vhost))
            # As oslo.messaging's notify_send declares it (not durable).
            exchange = kombu.Exchange('ceilometer', 'topic', durable=False,
                                      auto_delete=False)
            queue = kombu.Queue('qga-bench-counter', exchange,
                                routing_key='notifications.sample',
                                exclusive=True, auto_delete=True)
            consumer = self._conn.Consumer(queue, callbacks=[self._on],
                                           accept=['json'], no_ack=True)
            consumer.consume()
        except BaseException:
            self.__exit__()
            raise
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        return self

    def _on(self, body: Any, message: Any) -> None:
        self.count += 1
        self.bytes += len(message.body)

    def _drain(self) -> None:
        import socket
        while not self._stop:
            try:
                self._conn.drain_events(timeout=0.2)
            except socket.timeout:
                pass

    def settled(self, quiet: float = 0.3, limit: float = 5.0
                ) -> tuple[int, int]:
        """(count, bytes) once nothing new arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + limit
        last = (self.count, self.bytes)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = (self.count, self.bytes)
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                break
        return last

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)
        if self._conn is not None:
            self._conn.release()
        _rabbitmqctl('delete_vhost', self.vhost)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(['rabbitmqctl', '-q', *args], check=True,
                   capture_output=True, text=True, timeout=60)


# -- our service -------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    with open('/proc/%d/stat' % pid) as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _memory(pid: int) -> dict[str, int]:
    out = {}
    with open('/proc/%d/status' % pid) as status:
        for line in status:
            key, _, value = line.partition(':')
            if key in ('VmHWM', 'VmRSS'):
                out[key] = int(value.split()[0]) * 1024
    return out


def _worker_pid(parent: int) -> int:
    """The process that sweeps: ``qga-polling`` itself or its worker.

    oslo.service's threading backend (cotyledon) forks the worker from a
    thread of the master, so every task's children are looked at.  Called
    once the first sweep is logged: a fork has happened by then, if any.
    """
    children = []
    for task in os.listdir('/proc/%d/task' % parent):
        try:
            with open('/proc/%d/task/%s/children' % (parent, task)) as f:
                children += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return children[0] if children else parent


def _count_output(path: str) -> tuple[int, int]:
    """(lines, bytes) of the publisher's file so far."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return 0, 0
    return data.count(b'\n'), len(data)


def _wait_for_output(path: str, lines: int, timeout: float = 10.0) -> None:
    """Until the publisher's file has ``lines`` lines (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while _count_output(path)[0] < lines and time.monotonic() < deadline:
        time.sleep(0.01)


def run_service(config: str, log_file: str, output: str, guests: int,
                sweeps: int, interval: int, profile: str | None = None,
                bus: BusCounter | None = None) -> dict[str, Any]:
    """Run ``qga-polling --config-file`` for 1 + ``sweeps`` sweeps.

    :param bus: count notifications there instead of the output file
    """
    proc = subprocess.Popen([QGA_POLLING, '--config-file', config],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    spy = None
    try:
        worker = None
        marks = []  # per sweep: cpu, memory, output counts
        polls, published = [], []
        seen = 0
        text = ''
        offset = 0
        deadline = time.monotonic() + (sweeps + 1) * (interval + 30) + 30
        while seen < sweeps + 1:
            if time.monotonic() > deadline or proc.poll() is not None:
                lines = text.splitlines()
                errors = ([line for line in lines if ' CRITICAL ' in line]
                          or [line for line in lines if ' ERROR ' in line])
                raise RuntimeError('qga-polling did not complete %d sweeps%s'
                                   % (sweeps + 1, (': ' + errors[-1].split(
                                       '[-] ', 1)[-1]) if errors else ''))
            try:
                with open(log_file, 'rb') as log:
                    log.seek(offset)
                    chunk = log.read()
            except FileNotFoundError:
                chunk = b''
            # Whole lines only: the service may be writing the next one.
            chunk = chunk[:chunk.rfind(b'\n') + 1]
            offset += len(chunk)
            text += chunk.decode('utf-8', 'replace')
            done = PUBLISHED_LINE.findall(text)
            if len(done) <= seen:
                time.sleep(0.02)
                continue
            seen = len(done)
            if worker is None:
                worker = _worker_pid(proc.pid)
            # The line is logged once the sweep's samples are queued for
            # the publishers: with the file caught up (below), the CPU and
            # the output read now are that sweep's end, even when the next
            # sweep starts at once (an overrun interval).
            if bus is None:
                # Publishing runs beside the sweeps (per-publisher
                # workers): the mark is where the file holds every sample
                # queued so far, so that the CPU and bytes include writing.
                _wait_for_output(output, sum(int(n) for n, _ in done))
            cpu = _cpu_seconds(worker)
            lines, size = _count_output(output)
            notes = None
            if bus is not None:
                # Delivery to our consumer lags the publisher's confirm a
                # little: wait for quiet at the two marks that count.
                notes, size = (bus.settled() if seen == 1 or seen >= sweeps + 1
                               else (bus.count, bus.bytes))
            # 'seen': a sweep that overran the interval shares its mark
            # with the next one; counting lines keeps the division right.
            marks.append({'cpu': cpu, 'lines': lines, 'bytes': size,
                          'notifications': notes, 'seen': seen,
                          **_memory(worker)})
            if profile and spy is None:
                # From the first measured sweep on: no start-up, no imports.
                spy = subprocess.Popen(
                    [os.path.join(BIN_DIR, 'py-spy'), 'record', '--pid',
                     str(worker), '--function', '--format', 'raw',
                     '--output', profile, '--rate', '100', '--nonblocking'],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
            polls = POLL_LINE.findall(text)
            published = done
    finally:
        if spy is not None:
            # py-spy writes its file on SIGINT.
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                processes.stop_process(spy)
        processes.stop_process(proc, 15.0)
    first = marks[0]
    last = marks[-1]
    measured = last['seen'] - first['seen']
    walls = [float(w) for _, w in published[first['seen']:last['seen']]]
    poll_walls = [float(p[3]) for p in polls[first['seen']:last['seen']]]
    samples = (last['lines'] - first['lines']) / measured
    if bus is not None:
        samples = sum(int(n) for n, _ in published[first['seen']:
                                                   last['seen']]) / measured
    return {
        'sweeps': measured,
        'wall': statistics.median(walls),
        'poll_wall': statistics.median(poll_walls),
        'walls': walls,
        'cpu_ms_per_guest': (last['cpu'] - first['cpu']) * 1000.0
        / (measured * guests),
        'peak_rss': last['VmHWM'],
        'rss_growth': last['VmRSS'] - first['VmRSS'],
        # VmRSS at the end of each sweep, warm-up first: flat or growing
        'rss_per_sweep': [m['VmRSS'] for m in marks],
        'samples': samples,
        'up': int(polls[-1][1]) if polls else None,
        'bytes': (last['bytes'] - first['bytes']) / measured,
        'notifications': None if bus is None else (
            last['notifications'] - first['notifications']) / measured,
    }


def _tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            tasks = os.listdir('/proc/%d/task' % pid)
        except OSError:
            continue  # gone in between
        for task in tasks:
            try:
                with open('/proc/%d/task/%s/children' % (pid, task)) as f:
                    todo += [int(p) for p in f.read().split()]
            except OSError:
                pass
    return pids


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and every process below it."""
    total = 0.0
    for pid in _tree(root):
        try:
            total += _cpu_seconds(pid)
        except OSError:
            pass  # gone in between
    return total


def _tree_peak_rss(root: int) -> int:
    """The largest VmHWM among ``root`` and its descendants (the worker)."""
    peaks = [0]
    for pid in _tree(root):
        try:
            peaks.append(_memory(pid)['VmHWM'])
        except (OSError, KeyError):
            pass
    return max(peaks)


def _plugin_node(workdir: str, sockets: list[str]) -> str:
    """A libvirt ``test:///`` node file: one Nova domain per socket."""
    from tests.fixtures.libvirt_test_driver import write_node_file
    from tests.fixtures import nova_domain
    domains = []
    for index, sock in enumerate(sockets):
        server = nova_domain.Server(
            uuid='66666666-6666-4666-8666-%012d' % index,
            domain_name='instance-%08x' % (index + 1),
            display_name='bench-%d' % index,
            channels=((nova_domain.MONITOR, sock),))
        domains.append((nova_domain.nova_domain_xml(server), None))
    return write_node_file(os.path.join(workdir, 'node.xml'), domains)


def run_ceilometer_polling(workdir: str, sockets: list[str], cycles: int,
                           interval: int,
                           floor_plan: dict[str, Any] | None = None
                           ) -> dict[str, Any]:
    """Our pollsters in the real ``ceilometer-polling``; see the module.

    With ``floor_plan`` (:func:`floor_pollster.plan_from_samples`), the
    floor pollsters instead of ours, on the same node and configuration.
    """
    import importlib.metadata
    os.makedirs(workdir, exist_ok=True)
    env = dict(os.environ)
    if floor_plan is None:
        ours = {ep.name for ep in importlib.metadata.entry_points(
            group='ceilometer.poll.compute') if ep.name.startswith('guest.')}
        meters = 'guest.*'
    else:
        from tests.bench import floor_pollster
        site = os.path.join(workdir, 'site')
        ours = set(floor_pollster.write_distribution(site))
        plan = os.path.join(workdir, 'floor.json')
        with open(plan, 'w') as f:
            json.dump(floor_plan, f)
        env[floor_pollster.ENV] = plan
        env['PYTHONPATH'] = os.pathsep.join(
            [site, processes.ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
        meters = floor_pollster.PREFIX + '*'
    uri = _plugin_node(workdir, sockets)
    os.makedirs(os.path.join(workdir, 'pollsters.d'), exist_ok=True)
    polling_yaml = os.path.join(workdir, 'polling.yaml')
    with open(polling_yaml, 'w') as f:
        f.write('sources:\n  - name: guest_agent\n    interval: %d\n'
                '    meters:\n      - "%s"\n' % (interval, meters))
    log_file = os.path.join(workdir, 'ceilometer-polling.log')
    conf = os.path.join(workdir, 'ceilometer.conf')
    with open(conf, 'w') as f:
        f.write(f"""[DEFAULT]
host = bench
libvirt_uri = {uri}
log_file = {log_file}
pollsters_definitions_dirs = {workdir}/pollsters.d
[polling]
cfg_file = {polling_yaml}
[publisher_notifier]
telemetry_driver = noop
[publisher]
telemetry_secret = {SECRET}
[qga_polling]
discovery = libvirt
transport = socket
command_timeout = {COMMAND_TIMEOUT}
guest_budget = {GUEST_BUDGET}
max_concurrent_guests = {MAX_CONCURRENT}
backoff_initial = 0
[libvirt_discovery]
uri = {uri}
""")
    proc = subprocess.Popen(
        [os.path.join(BIN_DIR, 'ceilometer-polling'), '--config-file', conf,
         '--polling-namespaces', 'compute'],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    marks: list[tuple[float, float]] = []  # (cpu, monotonic) per cycle
    try:
        deadline = time.monotonic() + (cycles + 1) * (interval + 60) + 60
        text = ''
        while len(marks) < cycles + 1:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError('ceilometer-polling did not complete %d '
                                   'cycles' % (cycles + 1))
            try:
                with open(log_file, errors='replace') as log:
                    text = log.read()
            except FileNotFoundError:
                text = ''
            done = len([name for name in FINISHED_LINE.findall(text)
                        if name in ours]) // max(len(ours), 1)
            if done > len(marks):
                marks.append((_tree_cpu_seconds(proc.pid), time.monotonic()))
            else:
                time.sleep(0.05)
        polls = POLL_LINE.findall(text)
        peak_rss = _tree_peak_rss(proc.pid)
    finally:
        processes.stop_process(proc, 15.0)
    measured = len(marks) - 1
    walls = [float(p[3]) for p in polls[1:measured + 1]]
    return {
        'sweeps': measured,
        'wall': statistics.median(walls) if walls else math.nan,
        'poll_wall': statistics.median(walls) if walls else None,
        'walls': walls,
        'cpu_ms_per_guest': (marks[-1][0] - marks[0][0]) * 1000.0
        / (measured * len(sockets)),
        'peak_rss': peak_rss,
        'rss_growth': 0,
        'samples': (int(polls[-1][2]) if polls else
                    sum(m['count'] for m in (floor_plan or {}).values())),
        'up': int(polls[-1][1]) if polls else None,
        'bytes': 0,
        'notifications': None,
    }


def _floor_plan(workdir: str, sockets: list[str],
                interval: int) -> dict[str, Any]:
    """What our pollsters produce per meter in one cycle on this fleet:
    one ``qga-polling --once`` sweep with the file publisher.
    """
    from tests.bench import floor_pollster
    os.makedirs(workdir, exist_ok=True)
    config = os.path.join(workdir, 'once.conf')
    output = os.path.join(workdir, 'once.jsonl')
    write_config(config, sockets, interval, output)
    subprocess.run([os.path.join(BIN_DIR, 'qga-polling'), '--config-file',
                    config, '--once'], check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return floor_pollster.plan_from_samples(output)


def run_baseline(mode: str, config: str, output: str, sweeps: int,
                 max_seconds: float) -> dict[str, Any]:
    """One baseline as a process of its own; its measurements."""
    out = subprocess.run(
        processes.python_module(
            BASELINES, '--mode', mode, '--config-file', config,
            '--output', output, '--sweeps', str(sweeps), '--max-seconds',
            str(max_seconds), '--timeout', str(COMMAND_TIMEOUT)),
        cwd=processes.ROOT, check=True, capture_output=True, text=True, timeout=900)
    result = json.loads(out.stdout)
    records = result['sweeps']
    steady = records[1:] or records
    guests = result['guests']
    return {
        'sweeps': len(records),
        'wall': statistics.median(r['wall'] for r in steady),
        'poll_wall': None,
        'walls': [r['wall'] for r in records],
        'cpu_ms_per_guest': sum(r['cpu'] for r in steady) * 1000.0
        / (len(steady) * guests),
        'peak_rss': records[-1]['VmHWM'],
        'rss_growth': records[-1]['VmRSS'] - records[0]['VmRSS'],
        'samples': statistics.median(r['samples'] for r in steady),
        'up': records[-1]['up'],
        'bytes': statistics.median(r['bytes'] for r in steady),
    }


def measure_fleet(kind: str, count: int, silent: bool, sweeps: int,
                  baseline_sweeps: int, baseline_seconds: float,
                  profile: str | None = None, bus: bool = False,
                  interval: int | None = None,
                  reference: bool = False, plugin: bool = False,
                  only_plugin: bool = False) -> list[dict[str, Any]]:
    """Ours and both baselines on one fleet; one row each.

    With ``profile`` (a py-spy output file), only ours runs, profiled.
    With ``bus``, one more row: ours publishing with ``notifier://`` to a
    RabbitMQ virtual host of its own, where a consumer counts.  With
    ``reference`` (the issue's fleet), one more row: ours with the
    collectors' declared intervals (``default schedule``).
    """
    workdir = tempfile.mkdtemp(prefix='qgb', dir='/tmp')
    # Room for a sweep plus publishing, as an operator's interval leaves;
    # the figures stay right when a sweep overruns it anyway.
    interval = interval or max(2, math.ceil(2 + count / 250))
    rows = []
    try:
        with Fleet(kind, count, silent, os.path.join(workdir, 'f')) as fleet:
            config = os.path.join(workdir, 'qga-polling.conf')
            output = os.path.join(workdir, 'samples.jsonl')
            write_config(config, fleet.sockets, interval, output)
            runs = [('ours (qga-polling)', lambda: run_service(
                config, os.path.join(workdir, 'qga-polling.log'), output,
                count, sweeps, interval, profile))]
            if only_plugin:
                runs = []
            if reference and not profile:
                runs.append(('ours, default schedule', lambda: _schedule_run(
                    workdir, fleet.sockets, interval, count,
                    min(sweeps, 5))))
            if plugin:
                runs.append((PLUGIN,
                             lambda: run_ceilometer_polling(
                                 os.path.join(workdir, 'c'), fleet.sockets,
                                 min(sweeps, 3), interval)))
                runs.append((FLOOR, lambda: run_ceilometer_polling(
                    os.path.join(workdir, 'floor'), fleet.sockets,
                    min(sweeps, 3), interval, floor_plan=_floor_plan(
                        os.path.join(workdir, 'once'), fleet.sockets,
                        interval))))
            if reference and not profile:
                runs.append(('ours + /metrics', lambda: _exporter_run(
                    workdir, fleet.sockets, interval, count,
                    min(sweeps, 5))))
            if bus:
                # 3 sweeps: the row shows the bus, the others the rest.
                runs.append(('ours, notifier://', lambda: _bus_run(
                    workdir, fleet.sockets, interval, count,
                    min(sweeps, 3))))
            for mode in (('sequential', 'threads')
                         if not (profile or only_plugin) else ()):
                runs.append(('%s baseline' % mode,
                             lambda mode=mode: run_baseline(
                                 mode, config, os.path.join(
                                     workdir, mode + '.jsonl'),
                                 baseline_sweeps, baseline_seconds)))
            for name, run in runs:
                try:
                    row = run()
                except RuntimeError as exc:
                    if name == 'ours (qga-polling)':
                        raise
                    # The other rows stand; the table says why this failed.
                    rows.append({'fleet': fleet.label, 'poller': name,
                                 'guests': count, 'error': str(exc)})
                    print('  %-22s %-22s failed: %s' % (fleet.label, name,
                                                        exc),
                          file=sys.stderr, flush=True)
                    continue
                row.update(fleet=fleet.label, poller=name, guests=count)
                # A smoke run's cycle can end within the log's millisecond.
                row['samples_per_s'] = (row['samples'] / row['wall']
                                        if row['wall'] > 0 else 0.0)
                if row.get('notifications') is None:
                    # What notifier:// would send for them.
                    row['notifications'] = math.ceil(row['samples']
                                                     / NOTIFIER_BATCH)
                rows.append(row)
                print('  %-22s %-22s wall %.3f s, %.3f ms CPU/guest' % (
                    fleet.label, name, row['wall'],
                    row['cpu_ms_per_guest']), file=sys.stderr, flush=True)
            done = {r['poller']: r for r in rows if 'error' not in r}
            if 'ours, notifier://' in done and 'ours (qga-polling)' in done:
                # The file:// run's last sweep, still on disk.
                ours = done['ours (qga-polling)']
                done['ours, notifier://']['bus_json_ms_per_guest'] = (
                    bus_json_cost(output, ours['samples'], ours['bytes'],
                                  count))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def _schedule_run(workdir: str, sockets: list[str], interval: int,
                  count: int, sweeps: int) -> dict[str, Any]:
    """Ours with the collectors' declared intervals (filesystem and vcpus
    every 300 s): what an operator's default configuration costs.
    """
    config = os.path.join(workdir, 'qga-polling-schedule.conf')
    output = os.path.join(workdir, 'samples-schedule.jsonl')
    write_config(config, sockets, interval, output, every_sweep=False)
    return run_service(config, os.path.join(
        workdir, 'qga-polling-schedule.log'), output, count, sweeps,
        interval)


def _exporter_run(workdir: str, sockets: list[str], interval: int,
                  count: int, sweeps: int) -> dict[str, Any]:
    """Ours with the Prometheus exporter on, scraped once a second while
    it sweeps: the row's CPU against ours is the exporter's cost, and
    ``scrape_s`` the median time of one whole scrape of ``/metrics``.
    """
    import threading
    import urllib.request

    config = os.path.join(workdir, 'qga-polling-metrics.conf')
    output = os.path.join(workdir, 'samples-metrics.jsonl')
    write_config(config, sockets, interval, output)
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    with open(config, 'a') as conf:
        conf.write('[prometheus_exporter]\nenabled = true\nport = %d\n'
                   % port)
    scrapes: list[tuple[float, int]] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.wait(1.0):
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(
                        'http://127.0.0.1:%d/metrics' % port, timeout=10) as r:
                    body = r.read()
            except OSError:
                continue  # not listening yet (before the first sweep)
            if b'ceilometer_guest_agent_up' in body:
                scrapes.append((time.perf_counter() - start, len(body)))
    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        row = run_service(config, os.path.join(
            workdir, 'qga-polling-metrics.log'), output, count, sweeps,
            interval)
    finally:
        done.set()
        scraper.join(15)
    if scrapes:
        row['scrape_s'] = statistics.median(t for t, _ in scrapes)
        row['scrape_bytes'] = scrapes[-1][1]
    return row


def _bus_run(workdir: str, sockets: list[str], interval: int, count: int,
             sweeps: int) -> dict[str, Any]:
    with BusCounter() as bus:
        config = os.path.join(workdir, 'qga-polling-bus.conf')
        write_config(config, sockets, interval, '', bus.transport_url)
        return run_service(config, os.path.join(
            workdir, 'qga-polling-bus.log'), os.devnull, count, sweeps,
            interval, bus=bus)


def bus_json_cost(output: str, samples: float, size: float,
                  guests: int) -> float:
    """CPU ms per guest that oslo.messaging and kombu spend on JSON alone
    to send one sweep's samples as ``notifier://`` sends them.

    The sweep is the last ``samples`` whole lines (about ``size`` bytes) of
    the ``file://`` run's ``output``: the signed sample dicts ``notifier://``
    puts in ``payload.samples``.  In batches of :data:`NOTIFIER_BATCH`,
    each becomes the message ``oslo_messaging.Notifier`` builds and goes
    through the functions the rabbit driver calls on it
    (``oslo_messaging/_drivers/amqpdriver.py``, ``_send``): the unique id
    and context, ``serialize_msg`` (the 2.0 envelope: the message as JSON
    text, ``jsonutils.dumps``), then ``kombu.utils.json.dumps`` of the
    envelope (kombu's ``json`` serializer, in ``Producer.publish``).
    Measured in this process, in the same run as the ``notifier://`` row:
    the part of that row's CPU no publisher of ours can remove while the
    bus carries oslo.messaging's own encoding.
    """
    from kombu.utils import json as kombu_json
    from oslo_messaging._drivers import amqp as rpc_amqp
    from oslo_messaging._drivers import common as rpc_common
    from oslo_utils import timeutils

    with open(output, 'rb') as f:
        offset = max(0, os.fstat(f.fileno()).st_size - 2 * math.ceil(size))
        f.seek(offset)
        data = f.read()
    # Whole lines only: the one the seek cut, and one the service may have
    # been writing when it was stopped.
    lines = data[:data.rfind(b'\n') + 1].splitlines()[1 if offset else 0:]
    sweep = [json.loads(line)
             for line in lines[max(0, len(lines) - round(samples)):]]
    start = time.process_time()
    for first in range(0, len(sweep), NOTIFIER_BATCH):
        # What Notifier._notify builds (oslo_messaging/notify/notifier.py).
        message = {'message_id': str(uuid.uuid4()),
                   'publisher_id': 'ceilometer.polling',
                   'event_type': 'telemetry.polling', 'priority': 'SAMPLE',
                   'payload': {'samples':
                               sweep[first:first + NOTIFIER_BATCH]},
                   'timestamp': str(timeutils.utcnow())}
        rpc_amqp._add_unique_id(message)
        rpc_amqp.pack_context(message, {})
        kombu_json.dumps(rpc_common.serialize_msg(message))
    return (time.process_time() - start) * 1000.0 / guests


# -- micro rows (kept from the 16-guest bench) --------------------------------

def ping_latency(path: str, count: int) -> tuple[float, float]:
    """Median guest-ping ms: (our transport, blocking stdlib client)."""
    from ceilometer_qga.qga import transport_socket
    with RawClient(path, timeout=COMMAND_TIMEOUT) as client:
        base = []
        for _ in range(count):
            start = time.perf_counter()
            client.call('guest-ping')
            base.append(time.perf_counter() - start)

    async def ours() -> list[float]:
        t = transport_socket.SocketTransport('bench', path, COMMAND_TIMEOUT,
                                             1 << 20)
        await t.execute('guest-ping')
        out = []
        for _ in range(count):
            start = time.perf_counter()
            await t.execute('guest-ping')
            out.append(time.perf_counter() - start)
        await t.close()
        return out
    mine = asyncio.run(ours())
    return statistics.median(mine) * 1000, statistics.median(base) * 1000


def signing(count: int) -> tuple[float, float]:
    """Microseconds per signed sample: (ours, Ceilometer's)."""
    from ceilometer.publisher import utils as ceilo_utils
    from ceilometer_qga import sample as sample_mod
    from ceilometer_qga import signature
    sample = sample_mod.Sample(
        'guest.filesystem.used', 'gauge', 'B', 12345, 'u', 'p',
        'r-_2F', '2026-11-25T10:00:00', {
            'display_name': 'vm', 'flavor': {'name': 'm1', 'vcpus': 1},
            'mountpoint': '/', 'fstype': 'ext4', 'list': ['a', 'b']})
    msg = sample_mod.to_message(sample, 's')

    def per_sample(fn) -> float:
        start = time.perf_counter()
        for _ in range(count):
            fn(msg, 's')
        return (time.perf_counter() - start) / count * 1e6
    mine, base = [], []
    for _ in range(5):  # alternate, so load hits both alike
        mine.append(per_sample(signature.compute))
        base.append(per_sample(ceilo_utils.compute_signature))
    return statistics.median(mine), statistics.median(base)


def heartbeat_cost(count: int, beats: int) -> float:
    """Our CPU ms per guest per heartbeat (guest-ping over the sessions'
    open connections), ``count`` fake guests; the fleet runs in its own
    process, so only the poller's side is counted.
    """
    from ceilometer_qga import conf as conf_mod
    from ceilometer_qga.guest import Channel
    from ceilometer_qga.guest import Guest
    from ceilometer_qga.guest import STANDARD_CHANNEL
    from ceilometer_qga import heartbeat
    from ceilometer_qga.qga import transport_socket
    from ceilometer_qga import session as session_mod
    from oslo_config import cfg
    import uuid
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([])
    workdir = tempfile.mkdtemp(prefix='qga-bench-hb-', dir='/tmp')

    async def run(sockets: list[str]) -> float:
        sessions = []
        for i, sock in enumerate(sockets):
            chan = Channel(STANDARD_CHANNEL, sock)
            guest = Guest(str(uuid.UUID(int=i + 1)), 'g%d' % i,
                          channels=(chan,))
            transport = transport_socket.SocketTransport(
                guest.instance_id, sock, COMMAND_TIMEOUT, 1 << 20)
            sessions.append(session_mod.GuestSession(guest, transport, conf,
                                                     '', chan))
        await heartbeat.beat(sessions, COMMAND_TIMEOUT)  # connects
        start = time.process_time()
        for _ in range(beats):
            seen = await heartbeat.beat(sessions, COMMAND_TIMEOUT)
        cpu = time.process_time() - start
        if sum(o.state == 'ok' for o in seen) != count:
            raise RuntimeError('heartbeat: not every fake guest answered')
        for s in sessions:
            await s.close()
        return cpu / beats / count * 1000
    try:
        with fake_fleet.FakeFleet(workdir, count) as fleet:
            return asyncio.run(run(fleet.sockets))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def micro_rows(pings: int, signs: int,
               heartbeat_guests: int = 1000) -> list[dict[str, Any]]:
    """guest-ping on one real qemu-ga, signing, and the heartbeat."""
    rows = []
    with StandinFleet(1) as fleet:
        mine, base = ping_latency(fleet[0].socket, pings)
    rows.append({'measure': 'guest-ping median (ms)', 'ours': mine,
                 'baseline': 'stdlib blocking client', 'value': base})
    mine, base = signing(signs)
    rows.append({'measure': 'sign one sample (us)', 'ours': mine,
                 'baseline': 'ceilometer compute_signature', 'value': base})
    rows.append({'measure': 'heartbeat CPU per guest (ms), %d guests'
                 % heartbeat_guests,
                 'ours': heartbeat_cost(heartbeat_guests, 5),
                 'baseline': 'target (issue 21)', 'value': 0.1})
    return rows


# -- profile ------------------------------------------------------------------

def top_entries(raw_file: str, limit: int = 10) -> list[dict[str, Any]]:
    """Functions by own samples (and total) from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    with open(raw_file) as f:
        for line in f:
            stack, _, count = line.rstrip('\n').rpartition(' ')
            if not stack or not count.isdigit():
                continue
            n = int(count)
            samples += n
            frames = stack.split(';')
            own[frames[-1]] += n
            for frame in set(frames):
                total[frame] += n
    return [{'function': name, 'own_pct': 100.0 * n / samples,
             'total_pct': 100.0 * total[name] / samples}
            for name, n in own.most_common(limit)] if samples else []


# -- table --------------------------------------------------------------------

def _ratio(baseline: float, ours: float) -> str:
    # 0 CPU happens in tiny runs: below the 10 ms clock tick.
    return '%.2fx' % (baseline / ours) if ours else 'n/a'


def print_table(rows: list[dict[str, Any]], micro: list[dict[str, Any]],
                profile: list[dict[str, Any]]) -> None:
    """The one table, baselines after ours, ratios last."""
    print()
    print('qga-monitor bench: %d cores, load average %s; command_timeout '
          '%g s, guest_budget %g s, max_concurrent_guests %d' % (
              os.cpu_count(), ' '.join('%.2f' % x for x in os.getloadavg()),
              COMMAND_TIMEOUT, GUEST_BUDGET, MAX_CONCURRENT))
    head = ('%-22s %-20s %6s %5s %8s %8s %8s %7s %6s %8s %7s %6s %9s' % (
        'fleet', 'poller', 'sweeps', 'up', 'wall s', 'poll s', 'CPU ms/g',
        'RSS MiB', 'grow', 'samples', 'smp/s', 'notif', 'bytes'))
    print(head)
    print('-' * len(head))
    for r in rows:
        if 'error' in r:
            print('%-22s %-20s failed: %s' % (r['fleet'], r['poller'],
                                              r['error']))
            continue
        poll = '-' if r['poll_wall'] is None else '%.3f' % r['poll_wall']
        print('%-22s %-20s %6d %5s %8.3f %8s %8.3f %7.1f %6.1f %8d %7.0f '
              '%6d %9d' % (
                  r['fleet'], r['poller'], r['sweeps'],
                  '-' if r['up'] is None else r['up'], r['wall'],
                  poll, r['cpu_ms_per_guest'], r['peak_rss'] / 2 ** 20,
                  r['rss_growth'] / 2 ** 20, r['samples'],
                  r['samples_per_s'], r['notifications'], r['bytes']))
    print()
    print('%-22s %-22s %10s %10s %10s' % ('fleet', 'ratio (baseline/ours)',
                                          'wall', 'CPU', 'peak RSS'))
    by_fleet: dict[str, dict[str, dict]] = collections.defaultdict(dict)
    for r in rows:
        by_fleet[r['fleet']][r['poller']] = r
    for fleet, polls in by_fleet.items():
        ours = polls.get('ours (qga-polling)')
        for name, r in polls.items():
            if (ours is None or name.startswith('ours') or 'error' in r
                    or name == FLOOR):
                continue
            print('%-22s %-22s %10s %10s %10s' % (
                fleet, name, _ratio(r['wall'], ours['wall']),
                _ratio(r['cpu_ms_per_guest'], ours['cpu_ms_per_guest']),
                _ratio(r['peak_rss'], ours['peak_rss'])))
    for line in (shortfalls(rows) + floor_lines(rows) + bus_lines(rows)
                 + targets(rows)):
        print(line)
    if micro:
        print()
        for m in micro:
            print('%-24s ours %10.4f   %-30s %10.4f  %6.2fx' % (
                m['measure'], m['ours'], m['baseline'], m['value'],
                m['value'] / m['ours']))
    if profile:
        print()
        print('profile of the largest service run (py-spy, top by own '
              'time):')
        for p in profile:
            print('  %5.1f%% own %5.1f%% total  %s' % (
                p['own_pct'], p['total_pct'], p['function']))
    print()
    print('up: guests that answered (last sweep); '
          'wall: median over the measured sweeps (ours: logged by the '
          'service, polling to published; poll s: polling only); CPU ms/g: '
          'CPU per guest per sweep, start-up and warm-up sweep excluded; '
          'RSS: peak (VmHWM) and growth over the sweeps; samples, notif(ic'
          'ations) and bytes: per sweep, bytes of the JSON lines written, '
          'notifications those notifier:// would send (%d samples each); '
          'on the notifier:// row both counted on the bus (AMQP bodies); '
          'ratio above 1: ours is better.' % NOTIFIER_BATCH)


def floor_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Plugin mode split: Ceilometer's own per-sample floor and ours above it."""
    out = []
    by = {(r['fleet'], r['poller']): r for r in rows if 'error' not in r}
    for (fleet, poller), floor in by.items():
        plugin = by.get((fleet, PLUGIN))
        if poller != FLOOR or plugin is None:
            continue
        out.append('%s: %s %.3f ms CPU/guest = Ceilometer floor %.3f (same '
                   'samples, no agent) + our pollsters %.3f' % (
                       fleet, PLUGIN, plugin['cpu_ms_per_guest'],
                       floor['cpu_ms_per_guest'],
                       plugin['cpu_ms_per_guest'] - floor['cpu_ms_per_guest']))
    return out


def bus_lines(rows: list[dict[str, Any]]) -> list[str]:
    """``notifier://`` split: ours with ``file://``, oslo.messaging's and
    kombu's JSON of the same samples (:func:`bus_json_cost`), the rest.
    """
    out = []
    by = {(r['fleet'], r['poller']): r for r in rows if 'error' not in r}
    for (fleet, poller), bus in by.items():
        ours = by.get((fleet, 'ours (qga-polling)'))
        if poller != 'ours, notifier://' or ours is None or (
                'bus_json_ms_per_guest' not in bus):
            continue
        json_ms = bus['bus_json_ms_per_guest']
        out.append('%s: ours, notifier:// %.3f ms CPU/guest = ours with '
                   'file:// %.3f + oslo.messaging and kombu JSON of the same '
                   'samples %.3f + the rest of the bus %.3f' % (
                       fleet, bus['cpu_ms_per_guest'],
                       ours['cpu_ms_per_guest'], json_ms,
                       bus['cpu_ms_per_guest'] - ours['cpu_ms_per_guest']
                       - json_ms))
    return out


def shortfalls(rows: list[dict[str, Any]]) -> list[str]:
    """Warnings for fleets where ours published fewer samples than a
    baseline did from the same fleet: its figures would flatter it (the
    bench once measured a sweep cut to the publisher's buffer this way).
    """
    out = []
    by_fleet: dict[str, dict[str, dict]] = collections.defaultdict(dict)
    for r in rows:
        if 'error' not in r:
            by_fleet[r['fleet']][r['poller']] = r
    for fleet, polls in by_fleet.items():
        ours = polls.get('ours (qga-polling)')
        for name, r in polls.items():
            if ours and not name.startswith('ours') and name != FLOOR and (
                    ours['samples'] < r['samples']):
                out.append('WARNING: %s: ours published %d samples per '
                           'sweep, the %s %d' % (fleet, ours['samples'],
                                                 name, r['samples']))
    return out


#: issue 10's targets: (fleet label start, measure, bound, unit)
TARGETS = [('1000 fake, 50 silent', 'wall', 4.0, 's'),
           ('1000 fake, 50 silent', 'cpu_ms_per_guest', 1.0, 'ms/guest'),
           ('1000 fake, 50 silent', 'peak_rss', 150 * 2 ** 20, 'MiB'),
           ('100 real, 0 silent', 'wall', 1.0, 's')]
#: issue 19's targets, on other rows: (fleet, measure, bound, unit, row)
TARGETS_BY_ROW = [
    ('1000 fake, 50 silent', 'cpu_ms_per_guest', 0.8, 'ms/guest',
     'ours, notifier://'),
    ('1000 fake, 50 silent', 'cpu_ms_per_guest', 1.0, 'ms/guest', PLUGIN)]


def exporter_targets(rows: list[dict[str, Any]]) -> list[str]:
    """The Prometheus exporter's targets: its CPU per guest per sweep over
    ours without it, and one scrape of the reference fleet.
    """
    out = []
    by = {(r['fleet'], r['poller']): r for r in rows if 'error' not in r}
    for (fleet, poller), row in by.items():
        base = by.get((fleet, 'ours (qga-polling)'))
        if poller != 'ours + /metrics' or base is None:
            continue
        added = row['cpu_ms_per_guest'] - base['cpu_ms_per_guest']
        out.append('target: %-20s %-16s %8.3f ms/guest <= 0.1: %s' % (
            fleet, 'exporter CPU', added, 'met' if added <= 0.1
            else 'NOT MET'))
        if 'scrape_s' in row:
            out.append('target: %-20s %-16s %8.3f s <= 0.5: %s (%d bytes)'
                       % (fleet, 'one scrape', row['scrape_s'],
                          'met' if row['scrape_s'] <= 0.5 else 'NOT MET',
                          row['scrape_bytes']))
        else:
            out.append('target: %-20s one scrape: none succeeded: NOT MET'
                       % fleet)
    return out


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """One line per target of issue 10 that this run measured: met or not."""
    out = []
    for fleet, key, bound, unit, poller in (
            [t + ('ours (qga-polling)',) for t in TARGETS] + TARGETS_BY_ROW):
        for r in rows:
            if r['fleet'] != fleet or r['poller'] != poller or 'error' in r:
                continue
            scale = 2 ** 20 if unit == 'MiB' else 1
            value = r[key] / scale
            extra = ''
            if key == 'peak_rss':
                extra = ', growth %.1f MiB over %d sweeps' % (
                    r['rss_growth'] / 2 ** 20, r['sweeps'])
            out.append('target: %-20s %-26s %-16s %8.3f %s <= %g: %s%s' % (
                fleet, poller, key, value, unit, bound / scale,
                'met' if r[key] <= bound else 'NOT MET', extra))
    out += exporter_targets(rows)
    if out:
        out.insert(0, '')
    return out


def _new_file(prefix: str, suffix: str) -> str:
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir='/tmp')
    os.close(fd)
    return path


def main(argv: list[str] | None = None) -> int:
    """Measure every fleet, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='100,1000',
                        help='fake-fleet sizes, comma-separated')
    parser.add_argument('--real', type=int, default=100,
                        help='real qemu-ga guests (0: none)')
    parser.add_argument('--sweeps', type=int, default=5,
                        help='measured sweeps of ours, after one warm-up')
    parser.add_argument('--long-sweeps', type=int, default=20,
                        help='measured sweeps of ours on the largest fake '
                             'fleet with silent guests (RSS over them)')
    parser.add_argument('--baseline-sweeps', type=int, default=3)
    parser.add_argument('--baseline-seconds', type=float, default=20.0,
                        help='a baseline stops after the sweep that passes '
                             'this (at least one sweep)')
    parser.add_argument('--silent', default='0,5',
                        help='silent percentages to run: 0, 5 or both')
    parser.add_argument('--pings', type=int, default=2000)
    parser.add_argument('--interval', type=int,
                        help='[qga_polling] interval of our service (default: '
                             'room for a sweep, 2 s + 1 s per 250 guests)')
    parser.add_argument('--no-bus', action='store_true',
                        help='skip the notifier:// row (it needs RabbitMQ on '
                             '127.0.0.1:5672, as make bench starts it)')
    parser.add_argument('--no-plugin', action='store_true',
                        help='skip the row of our pollsters inside '
                             'ceilometer-polling')
    parser.add_argument('--plugin-only', action='store_true',
                        help='only the ceilometer-polling row, on the '
                             'largest fake fleet (5%% silent)')
    parser.add_argument('--profile', action='store_true',
                        help='py-spy profile of the largest fake fleet, 5%% '
                             'silent, in a run of its own')
    parser.add_argument('--json', help='write the table here (default: a '
                                       'new file under /tmp)')
    parser.add_argument('--smoke', action='store_true',
                        help='5 fake guests, 1 sweep, no real fleet: seconds')
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(',') if s]
    silent = [s.strip() == '5' for s in args.silent.split(',')]
    if args.smoke:
        sizes, args.real, args.sweeps, args.interval = [5], 0, 1, 1
        args.baseline_sweeps, args.pings, silent = 1, 20, [True]
    fleet_runs = [('fake', n) for n in sizes]
    if args.real:
        fleet_runs.append(('real', args.real))
    started = time.monotonic()
    rows = []
    # The bus row on the largest fake fleet, silent guests included.
    bus_fleet = ('fake', max(sizes), silent[-1])
    if args.plugin_only:
        rows = [r for r in measure_fleet(
            'fake', max(sizes), silent[-1], args.sweeps, 0, 0,
            interval=args.interval, plugin=True, only_plugin=True)]
        print_table(rows, [], [])
        return 0
    for kind, count in fleet_runs:
        for quiet in silent:
            reference = (kind, count, quiet) == bus_fleet
            rows += measure_fleet(
                kind, count, quiet,
                args.long_sweeps if reference and not args.smoke
                else args.sweeps, args.baseline_sweeps,
                args.baseline_seconds, bus=not args.no_bus and reference,
                interval=args.interval,
                reference=reference and not args.smoke,
                plugin=not args.no_plugin and reference)
    micro = micro_rows(args.pings, 200 if args.smoke else 2000,
                       20 if args.smoke else 1000)
    profile: list[dict[str, Any]] = []
    if args.profile:
        raw = _new_file('qga-bench-profile-', '.txt')
        measure_fleet('fake', max(sizes), True, 3, 1, 0, profile=raw)
        profile = top_entries(raw)
        print('py-spy raw profile: %s' % raw, file=sys.stderr)
    print_table(rows, micro, profile)
    path = args.json or _new_file('qga-bench-', '.json')
    with open(path, 'w') as out:
        json.dump({'rows': rows, 'micro': micro, 'profile': profile,
                   'cores': os.cpu_count(), 'loadavg': os.getloadavg(),
                   'seconds': time.monotonic() - started}, out, indent=1)
    print('table as JSON: %s (whole run %.0f s)' % (
        path, time.monotonic() - started))
    return 0


if __name__ == '__main__':
    sys.exit(main())
