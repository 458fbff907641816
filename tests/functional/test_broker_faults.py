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

"""``qga-polling`` as a service while the broker hangs: sweeps keep time.

Real parts: the installed ``qga-polling`` console script as a service
process (``interval = 1``), a real qemu-ga 7.2 stand-in guest, RabbitMQ on
127.0.0.1:5672 (a virtual host of this module's own) reached through a
TCP proxy (``tests/fixtures/tcp_proxy.py``) that is paused: the
connection stays open and nothing is forwarded, which is what a hung
broker looks like to oslo.messaging.  An oslo.messaging listener, directly
on the broker, receives what the notifier delivers.

Delivery on the bus is at-least-once, as for Ceilometer's own agent: a
batch whose publisher confirm is lost with its connection (the broker took
it, the client never heard so) is sent again, whole, with the same message
ids, which is what lets a consumer drop the copy.  Nothing is lost.
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
import uuid

from oslo_config import cfg
import oslo_messaging
import pytest

from tests.fixtures.agents.qga_standin import StandinGuest
from tests.fixtures import rabbit
from tests.fixtures.tcp_proxy import tcp_proxy  # noqa: F401

pytestmark = pytest.mark.functional

BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
UUID = '44444444-4444-4444-8444-000000000001'
PAUSE = 12.0
CUT = 5.0
_SWEEP_RE = re.compile(r'^(\S+ \S+) .*Sweep: \d+ guests', re.MULTILINE)


class _Collect:
    """oslo.messaging endpoint: counts every sample it gets, by message id,
    and keeps each notification's ids as one batch.
    """

    def __init__(self) -> None:
        self.ids: collections.Counter = collections.Counter()
        self.batches: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def sample(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            batch = tuple(s['message_id'] for s in payload['samples'])
            self.ids.update(batch)
            self.batches.append(batch)
        return oslo_messaging.NotificationResult.HANDLED

    def resent(self) -> list[tuple[str, ...]]:
        """The notifications whose samples had all arrived before."""
        seen: set[str] = set()
        again = []
        for batch in self.batches:
            if seen.issuperset(batch):
                again.append(batch)
            seen.update(batch)
        return again


def sweep_times(log_path: str) -> list[float]:
    with open(log_path, errors='replace') as f:
        text = f.read()
    return [datetime.datetime.strptime(m.group(1), '%Y-%m-%d %H:%M:%S.%f').timestamp()
            for m in _SWEEP_RE.finditer(text)]


def file_ids(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)['message_id'] for line in f if line.strip()]


def test_hung_broker_does_not_stop_the_sweeps_nor_the_file(
        short_tmpdir, rabbit_vhost, tcp_proxy):  # noqa: F811
    """Issue 9: with the broker hung 45 s no sweep ran for 44 s.  Now the
    sweeps keep their 1 s schedule and the file publisher keeps writing
    while the notifier is stuck; then the broker is cut off (connections
    closed, new ones refused) and restored.  Afterwards everything queued
    has reached the bus, nothing lost; a sample that arrives twice is part
    of a whole batch sent again after its connection failed (at-least-once),
    never a copy of its own.
    """
    proxy = tcp_proxy((rabbit.HOST, rabbit.PORT))
    conf_bus = cfg.ConfigOpts()
    conf_bus([])
    transport = oslo_messaging.get_notification_transport(
        conf_bus, url=rabbit.vhost_url(rabbit_vhost))
    endpoint = _Collect()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications', exchange='ceilometer')],
        [endpoint], executor='threading', pool='qga-broker-%s' % uuid.uuid4().hex[:8])
    listener.start()
    guest = StandinGuest('broker', short_tmpdir).start()
    out = os.path.join(short_tmpdir, 'samples.jsonl')
    log = os.path.join(short_tmpdir, 'qga-polling.log')
    conf = os.path.join(short_tmpdir, 'qga-polling.conf')
    with open(conf, 'w') as f:
        f.write(f"""[DEFAULT]
transport_url = {rabbit.vhost_url(rabbit_vhost, port=proxy.port)}
log_file = {log}
[qga_polling]
discovery = static
transport = socket
publishers = notifier://?hold_off=1,file://{out}
interval = 1
command_timeout = 1
guest_budget = 3
shutdown_timeout = 5
[static_discovery]
guests = {UUID}={guest.socket}
[publisher]
telemetry_secret = broker-test
""")
    proc = subprocess.Popen([BIN, '--config-file', conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(endpoint.ids) < 10 or len(sweep_times(log)) < 2:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, 'nothing on the bus in 30 s'
            time.sleep(0.1)
        proxy.pause()
        paused_at = time.time()
        in_file_before = len(file_ids(out))
        time.sleep(PAUSE)
        in_file_during = len(file_ids(out))
        resumed_at = time.time()
        proxy.resume()
        time.sleep(4)
        # Then the broker goes away altogether for a while, and comes back.
        proxy.cut()
        cut_at = time.time()
        time.sleep(CUT)
        restored_at = time.time()
        proxy.resume()
        time.sleep(5)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        guest.stop()
    try:
        sent = file_ids(out)
        deadline = time.monotonic() + 30
        while set(sent) - set(endpoint.ids) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert rc == 0, proc.stderr.read()
    during = [t for t in sweep_times(log) if paused_at <= t <= resumed_at]
    # one sweep a second, whatever the notifier does
    assert len(during) >= PAUSE - 3, (len(during), during)
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert max(gaps) < 2.5, gaps
    assert in_file_during > in_file_before  # the file kept receiving
    during_cut = [t for t in sweep_times(log) if cut_at <= t <= restored_at]
    assert len(during_cut) >= CUT - 2, during_cut
    lost = set(sent) - set(endpoint.ids)
    twice = {i for i, n in endpoint.ids.items() if n > 1}
    assert not lost, '%d of %d samples never reached the bus' % (len(lost), len(sent))
    resent = endpoint.resent()
    assert twice == set().union(*resent), (twice, resent)
    # one batch can be in flight when a fault strikes, and there were two
    assert len(resent) <= 2, resent
    with open(log, errors='replace') as f:
        assert 'Traceback' not in f.read()
    print('hung broker: %d sweeps in %.0f s paused (max gap %.2f s), %d in %.0f s '
          'cut; %d samples, %d delivered, %d lost, %d twice (%d batches resent)'
          % (len(during), PAUSE, max(gaps), len(during_cut), CUT, len(sent),
             len(set(sent) & set(endpoint.ids)), len(lost), len(twice),
             len(resent)))
