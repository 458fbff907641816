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

"""``make soak``: a mixed fleet polled for a long time, the broker cut twice.

What runs, all real: ``qga-polling`` as a service (the console script, its
oslo.service launcher and worker) at a 1 s interval, sweeping real
``qemu-ga`` stand-ins (``tests/fixtures/agents/qga_standin.py``) and one fake agent per
hostile behaviour (``tests/fixtures/agents/fake_agent.py``); it publishes with
``notifier://`` to a RabbitMQ vhost of its own through a cuttable TCP
proxy (``tests/fixtures/tcp_proxy.py``), and with ``file://`` to a local file, the
record of every sample produced.  A listener on the broker itself (not
through the proxy) collects what was delivered.  The proxy is cut (every
connection closed, new ones refused) twice, for ``SOAK_CUT_SECONDS`` each,
and restored.

At the end (SIGTERM, the service flushes) it prints sweeps done, sweeps
late (started more than ``LATE`` s after their schedule), samples produced,
delivered, lost, duplicated, and the worker's RSS and open fds at start
and end, and exits 1 if a sample was lost or duplicated or RSS/fds grew
beyond a bound.

Environment: ``SOAK_SECONDS`` (default 600), ``SOAK_CUT_SECONDS``
(default 30), ``SOAK_REAL`` (real stand-ins, default 3).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from oslo_config import cfg
import oslo_messaging

from tests.fixtures.agents.qga_standin import StandinFleet
from tests.fixtures import processes
from tests.fixtures.tcp_proxy import TcpProxy

BROKER = ('127.0.0.1', 5672)
ROOT = processes.ROOT
FAKE_AGENT = 'tests.fixtures.agents.fake_agent'
BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
INTERVAL = 1
#: seconds after its schedule a sweep may start and still be on time
LATE = 0.5
#: hostile agents: (mode, extra fake_agent.py options)
HOSTILE = [
    ('hang', []), ('slow', ['--delay', '0.3', '--fault-on', 'command']),
    ('garbage', ['--seed', '7']), ('huge', ['--size', str(4 * 1024 * 1024)]),
    ('endless', []), ('stale', []), ('disconnect', []), ('wrong-types', []),
    ('restart', ['--after', '5']),
]
#: growth allowed between the first and the last measure
RSS_GROWTH_KIB = 20 * 1024
FD_GROWTH = 8
SWEEP_LINE = re.compile(
    r'^(\S+ \S+) \d+ INFO ceilometer_qga\.poller \[.*\] Sweep: (\d+) guests, '
    r'(\d+) up, (\d+) samples in ([\d.]+) s')


class Collector:
    """oslo.messaging endpoint: message ids of every delivered sample."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def sample(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.ids.extend(s['message_id'] for s in payload['samples'])
        return oslo_messaging.NotificationResult.HANDLED


def rabbitmqctl(*args: str) -> None:
    subprocess.run(['rabbitmqctl', '-q', *args], check=True,
                   capture_output=True, timeout=60)


def worker_pid(parent: int) -> int | None:
    """The oslo.service worker forked by the launcher ``parent``."""
    children = processes.child_pids(parent)
    return children[0] if children else None


def measure(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open fds) of ``pid``."""
    rss = 0
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                rss = int(line.split()[1])
    return rss, len(os.listdir('/proc/%d/fd' % pid))


def sweeps_from_log(path: str) -> list[tuple[float, float, int]]:
    """(start, duration, samples) of each sweep, from the service's log."""
    found = []
    with open(path, errors='replace') as f:
        for line in f:
            m = SWEEP_LINE.match(line)
            if m:
                end = datetime.datetime.strptime(
                    m.group(1), '%Y-%m-%d %H:%M:%S.%f').timestamp()
                duration = float(m.group(5))
                found.append((end - duration, duration, int(m.group(4))))
    return found


def late_sweeps(sweeps: list[tuple[float, float, int]]) -> int:
    """Sweeps that started more than LATE s after their schedule."""
    late = 0
    for (start0, dur0, _), (start1, _d, _s) in zip(sweeps, sweeps[1:]):
        scheduled = start0 + max(INTERVAL, dur0)
        if start1 - (start0 + INTERVAL) > LATE and start1 - scheduled > LATE:
            late += 1
        elif dur0 > INTERVAL + LATE:
            late += 1  # the sweep itself overran: the next one is late
    return late


def main() -> int:
    seconds = float(os.environ.get('SOAK_SECONDS', 600))
    cut_seconds = float(os.environ.get('SOAK_CUT_SECONDS',
                                       min(30.0, seconds / 10)))
    real = int(os.environ.get('SOAK_REAL', 3))
    workdir = tempfile.mkdtemp(prefix='qgasoak', dir='/tmp')
    vhost = 'qga-soak-%s' % uuid.uuid4().hex[:8]
    rabbitmqctl('add_vhost', vhost)
    rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*')
    fakes: list[subprocess.Popen] = []
    service: subprocess.Popen | None = None
    listener = transport = fleet = None
    ok = False
    proxy = TcpProxy(*BROKER).start()
    try:
        collector = Collector()
        conf = cfg.ConfigOpts()
        conf([])
        transport = oslo_messaging.get_notification_transport(
            conf, url='rabbit://guest:guest@%s:%d/%s' % (*BROKER, vhost))
        listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic='notifications',
                                              exchange='ceilometer')],
            [collector], executor='threading', pool='soak')
        listener.start()

        fleet = StandinFleet(real, workdir=workdir).start()
        guests = ['44444444-4444-4444-8444-%012d' % i + '=' + g.socket
                  for i, g in enumerate(fleet)]
        for i, (mode, extra) in enumerate(HOSTILE):
            sock = os.path.join(workdir, 'fake-%s.sock' % mode)
            log = open(os.path.join(workdir, 'fake-%s.log' % mode), 'wb')
            fakes.append(subprocess.Popen(
                processes.python_module(FAKE_AGENT, '--socket', sock, '--mode',
                                        mode, *extra),
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                start_new_session=True))
            guests.append('55555555-5555-4555-8555-%012d=%s' % (i, sock))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
                os.path.exists(g.split('=', 1)[1]) for g in guests):
            time.sleep(0.1)

        samples_file = os.path.join(workdir, 'samples.jsonl')
        log_file = os.path.join(workdir, 'qga-polling.log')
        conf_file = os.path.join(workdir, 'qga-polling.conf')
        with open(conf_file, 'w') as f:
            f.write(f"""[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:{proxy.port}/{vhost}
log_file = {log_file}
[qga_polling]
discovery = static
transport = socket
publishers = notifier://?retry=0&hold_off=2,file://{samples_file}
interval = {INTERVAL}
command_timeout = 0.3
guest_budget = 0.8
backoff_initial = 5
backoff_max = 20
shutdown_timeout = 20
[static_discovery]
guests = {','.join(guests)}
[oslo_messaging_rabbit]
rabbit_retry_interval = 1
kombu_reconnect_delay = 0.5
""")
        service = subprocess.Popen([BIN, '--config-file', conf_file],
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        started = time.monotonic()
        first = None
        while first is None and time.monotonic() - started < 30:
            time.sleep(0.5)
            pid = worker_pid(service.pid)
            if pid and os.path.exists(log_file) and sweeps_from_log(log_file):
                first = measure(pid)
        if first is None:
            raise RuntimeError('qga-polling did not start sweeping')
        print('soak: %d real + %d hostile guests for %.0f s, cuts of %.0f s'
              % (real, len(HOSTILE), seconds, cut_seconds), flush=True)
        # RSS over time, to tell a leak (steady growth) from a high-water
        # mark (growth at the cuts, while the buffer holds samples).
        rss_curve: list[int] = []
        done = threading.Event()

        def sample_rss() -> None:
            pid = worker_pid(service.pid)
            while pid and not done.wait(max(seconds / 10, 1)):
                try:
                    rss_curve.append(measure(pid)[0])
                except OSError:
                    return
        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        cuts = [seconds * 0.25, seconds * 0.6]
        for at in cuts:
            time.sleep(max(0.0, started + at - time.monotonic()))
            proxy.cut()
            print('soak: broker cut at %.0f s' % (time.monotonic() - started),
                  flush=True)
            time.sleep(cut_seconds)
            proxy.restore()
            print('soak: broker restored at %.0f s'
                  % (time.monotonic() - started), flush=True)
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        last = measure(worker_pid(service.pid) or service.pid)
        done.set()
        service.send_signal(signal.SIGTERM)
        rc = service.wait(timeout=60)
        # What was sent before the end may still be on its way.
        produced = set()
        with open(samples_file) as f:
            for line in f:
                if line.strip():
                    produced.add(json.loads(line)['message_id'])
        settle = time.monotonic() + 30
        while time.monotonic() < settle:
            with collector.lock:
                if produced <= set(collector.ids):
                    break
            time.sleep(0.5)
        time.sleep(2)
        with collector.lock:
            ids = list(collector.ids)
        delivered = produced & set(ids)
        duplicated = len(ids) - len(set(ids))
        sweeps = sweeps_from_log(log_file)
        with open(log_file, errors='replace') as f:
            log_text = f.read()
        report = {
            'seconds': seconds,
            'sweeps done': len(sweeps),
            'sweeps late': late_sweeps(sweeps),
            'longest sweep s': max(d for _s, d, _n in sweeps),
            'samples produced': len(produced),
            'delivered': len(delivered),
            'lost': len(produced - delivered),
            'duplicated': duplicated,
            'unexpected (not produced)': len(set(ids) - produced),
            'RSS KiB start/end': '%d / %d' % (first[0], last[0]),
            'open fds start/end': '%d / %d' % (first[1], last[1]),
            'RSS KiB every %.0f s' % max(seconds / 10, 1): ' '.join(
                str(r) for r in rss_curve),
            'log lines': log_text.count('\n'),
            'tracebacks in log': log_text.count('Traceback'),
            'proxy': proxy.stats,
            'exit code': rc,
        }
        for key, value in report.items():
            print('%-26s %s' % (key, value))
        ok = (rc == 0 and report['lost'] == 0 and duplicated == 0
              and last[0] - first[0] < RSS_GROWTH_KIB
              and last[1] - first[1] <= FD_GROWTH)
        print('soak: %s%s' % ('PASS' if ok else 'FAIL',
                              '' if ok else ' (logs in %s)' % workdir))
        return 0 if ok else 1
    finally:
        if service is not None and service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
        for proc in fakes:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if fleet is not None:
            fleet.stop()
        if listener is not None:
            listener.stop()
            listener.wait()
        if transport is not None:
            transport.cleanup()
        proxy.stop()
        rabbitmqctl('delete_vhost', vhost)
        if ok and os.environ.get('SOAK_KEEP') is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
