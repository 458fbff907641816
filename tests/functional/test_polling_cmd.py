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

"""``qga-polling`` as an operator runs it: real process, real agents, bus.

Real parts: the installed ``qga-polling`` console script in its own
process, qemu-ga stand-in guests, RabbitMQ on 127.0.0.1:5672, an
oslo.messaging notification listener on exchange ``ceilometer``.
"""

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

from ceilometer.publisher.utils import verify_signature
from oslo_config import cfg
import oslo_messaging
import pytest

from tests.fixtures.agents.qga_standin import StandinFleet
from tests.fixtures import rabbit

pytestmark = pytest.mark.functional

UUIDS = ['22222222-2222-4222-8222-%012d' % i for i in range(1, 4)]
SAMPLE_KEYS = {'source', 'counter_name', 'counter_type', 'counter_unit',
               'counter_volume', 'user_id', 'user_name', 'project_id',
               'project_name', 'resource_id', 'timestamp',
               'resource_metadata', 'message_id', 'monotonic_time',
               'message_signature'}
SECRET = 'functional-test-secret'
BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix='qgac', dir='/tmp')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_conf(workdir, guests, publishers, extra='',
               transport_url='rabbit://guest:guest@127.0.0.1:5672/'):
    path = os.path.join(workdir, 'qga-polling.conf')
    with open(path, 'w') as f:
        f.write(f"""[DEFAULT]
transport_url = {transport_url}
log_file = {workdir}/qga-polling.log
[qga_polling]
discovery = static
transport = socket
publishers = {','.join(publishers)}
interval = 1
command_timeout = 1
guest_budget = 3
shutdown_timeout = 3
{extra}
[static_discovery]
guests = {','.join('%s=%s' % g for g in guests)}
[publisher]
telemetry_secret = {SECRET}
""")
    return path


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_once_writes_samples_and_exits_zero(workdir):
    out = os.path.join(workdir, 'samples.jsonl')
    with StandinFleet(2, workdir=workdir) as fleet:
        conf = write_conf(workdir, [(UUIDS[i], g.socket)
                                    for i, g in enumerate(fleet)],
                          ['file://' + out])
        proc = subprocess.run([BIN, '--config-file', conf, '--once'],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    samples = read_jsonl(out)
    for s in samples:
        assert set(s) == SAMPLE_KEYS
        assert verify_signature(s, SECRET)
    ups = {s['resource_id']: s['counter_volume'] for s in samples
           if s['counter_name'] == 'guest.agent.up'}
    assert ups == {UUIDS[0]: 1, UUIDS[1]: 1}


@pytest.mark.parametrize('extra,option', [
    ('collectors = filesystem,nosuch', '[qga_polling] collectors'),
    ('discovery = nosuch', '[qga_polling] discovery'),
])
def test_bad_config_is_a_clear_error(workdir, extra, option):
    conf = write_conf(workdir, [(UUIDS[0], '/tmp/x.sock')],
                      ['file://' + workdir + '/s.jsonl'], extra)
    # the last value of a repeated option wins in oslo.config
    proc = subprocess.run([BIN, '--config-file', conf, '--once'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert option in proc.stderr


def test_bad_static_guest_names_the_option(workdir):
    conf = write_conf(workdir, [('not-a-uuid', 'relative.sock')],
                      ['file://' + workdir + '/s.jsonl'])
    proc = subprocess.run([BIN, '--config-file', conf, '--once'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert '[static_discovery] guests' in proc.stderr


def test_bad_publisher_url_names_the_option(workdir):
    conf = write_conf(workdir, [(UUIDS[0], '/tmp/x.sock')], ['nosuch://x'])
    proc = subprocess.run([BIN, '--config-file', conf, '--once'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert '[qga_polling] publishers' in proc.stderr


def test_service_sweeps_until_sigterm_then_flushes_and_exits(workdir):
    out = os.path.join(workdir, 'samples.jsonl')
    with StandinFleet(1, workdir=workdir) as fleet:
        conf = write_conf(workdir, [(UUIDS[0], fleet[0].socket)],
                          ['file://' + out])
        proc = subprocess.Popen([BIN, '--config-file', conf],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            sweeps = 0
            while time.monotonic() < deadline and sweeps < 2:
                if os.path.exists(out):
                    sweeps = sum(1 for s in read_jsonl(out)
                                 if s['counter_name'] == 'guest.agent.up')
                time.sleep(0.1)
            assert sweeps >= 2, 'fewer than two sweeps in 30 s'
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=15)
            stop_time = time.monotonic() - start
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert rc == 0, proc.stderr.read()
    assert stop_time < 10, stop_time
    # every line is a complete sample: the file was flushed, not torn
    assert all(set(s) == SAMPLE_KEYS for s in read_jsonl(out))
    with open(os.path.join(workdir, 'qga-polling.log')) as f:
        assert 'qga-polling stopped' in f.read()


class _Collect:
    """oslo.messaging endpoint: keeps every notification it gets."""

    def __init__(self):
        self.received = []
        self.event = threading.Event()

    def sample(self, ctxt, publisher_id, event_type, payload, metadata):
        self.received.append((publisher_id, event_type, payload))
        self.event.set()
        return oslo_messaging.NotificationResult.HANDLED


def test_once_publishes_ceilometer_notifications_on_rabbitmq(
        workdir, rabbit_vhost):
    url = rabbit.vhost_url(rabbit_vhost)
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    endpoint = _Collect()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications',
                                          exchange='ceilometer')],
        [endpoint], executor='threading',
        pool='qga-cmd-test-%s' % uuid.uuid4().hex[:8])
    listener.start()
    try:
        with StandinFleet(2, workdir=workdir) as fleet:
            guests = [(UUIDS[i], g.socket) for i, g in enumerate(fleet)]
            path = write_conf(workdir, guests, ['notifier://'],
                              transport_url=url)
            proc = subprocess.run([BIN, '--config-file', path, '--once'],
                                  capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = sum(len(p['samples']) for _, _, p in endpoint.received)
            ups = [s for _, _, p in endpoint.received for s in p['samples']
                   if s['counter_name'] == 'guest.agent.up']
            if len(ups) >= 2:
                break
            endpoint.event.wait(0.2)
            endpoint.event.clear()
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert got > 20
    for publisher_id, event_type, payload in endpoint.received:
        assert publisher_id == 'ceilometer.polling'
        assert event_type == 'telemetry.polling'
        assert set(payload) == {'samples'}
        for s in payload['samples']:
            assert set(s) == SAMPLE_KEYS
            assert verify_signature(s, SECRET)
            assert s['source'] == 'openstack'
            assert s['counter_type'] in ('gauge', 'cumulative')
    assert {s['resource_id'] for s in ups} == set(UUIDS[:2])


def test_once_delivers_a_sweep_larger_than_buffer_size(workdir):
    """``buffer_size`` bounds what waits for an unreachable destination.

    One sweep of a healthy host can be larger (1,000 guests make about
    25,000 samples against a default of 10,000); it used to be cut to
    ``buffer_size`` on its way to a publisher that worked.
    """
    out = os.path.join(workdir, 'samples.jsonl')
    with StandinFleet(2, workdir=workdir) as fleet:
        conf = write_conf(workdir, [(UUIDS[i], g.socket)
                                    for i, g in enumerate(fleet)],
                          ['file://' + out], 'buffer_size = 5')
        proc = subprocess.run([BIN, '--config-file', conf, '--once'],
                              capture_output=True, text=True, timeout=60)
        log = open(os.path.join(workdir, 'qga-polling.log')).read()
    assert proc.returncode == 0, proc.stderr
    made = int(re.search(r'Sweep: 2 guests, 2 up, (\d+) samples', log)[1])
    assert made > 5 * 4
    assert len(read_jsonl(out)) == made
    assert 'dropped' not in log
