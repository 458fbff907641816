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

"""Ceilometer's notification agent consumes what ``qga-polling --once`` sends.

Real here:

* ``qga-polling --once`` in its own process (``python -m
  ceilometer_qga.cmd.polling`` from this tree), static discovery of three
  qemu-ga 7.2 stand-in guests, publishers ``notifier://`` and, to know
  exactly what was sent, our ``file://``;
* RabbitMQ on 127.0.0.1:5672;
* on the receiving end, Ceilometer 27's own ``NotificationService``
  (``ceilometer/notification.py``), run in this process with a temporary
  configuration: it loads the ``meter`` pipeline (``SamplePipelineManager``)
  whose endpoints include ``TelemetryIpc`` for ``telemetry.polling``, and
  starts its batch notification listener on exchange ``ceilometer``; the
  pipeline's sink publishes with Ceilometer's ``file://`` publisher;
* a second oslo.messaging listener, in its own pool (its own queue), keeps
  the raw notifications as they crossed the bus, whose signatures are
  checked with Ceilometer's ``verify_signature``.

Not the defaults, on purpose: both sides use a topic of their own
(``[oslo_messaging_notifications] topics``, which both Ceilometer and our
publisher honour) instead of ``notifications``, so that no other test's
listener on the shared broker can take these messages, and
``[notification] notification_control_exchanges`` is only ``ceilometer``,
so that the service does not declare queues on fourteen exchanges.  Every
queue created here is deleted afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
import uuid

from ceilometer import messaging as ceilometer_messaging
from ceilometer import notification
from ceilometer.publisher import utils as publisher_utils
from ceilometer import service as ceilometer_service
import kombu
from oslo_config import cfg
import oslo_messaging
import pytest

from tests.fixtures import processes as processes_mod
from tests.fixtures import rabbit

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SECRET = 'notification-agent-test-secret'
UUIDS = [str(uuid.uuid4()) for _ in range(3)]
#: the priorities an oslo.messaging notification listener declares queues for
PRIORITIES = ('audit', 'debug', 'info', 'warn', 'error', 'critical', 'sample')
#: what ``Sample.as_dict()`` holds, i.e. every field Ceilometer keeps
SAMPLE_FIELDS = {'name', 'type', 'unit', 'volume', 'user_id', 'user_name',
                 'project_id', 'project_name', 'resource_id', 'timestamp',
                 'resource_metadata', 'source', 'id', 'monotonic_time'}
#: Ceilometer's field <- our wire field (TelemetryIpc.build_sample)
WIRE_FIELD = {'name': 'counter_name', 'type': 'counter_type',
              'unit': 'counter_unit', 'volume': 'counter_volume',
              'id': 'message_id'}


def amqp_url(rabbit_url: str) -> str:
    """kombu's URL of the broker oslo.messaging calls ``rabbit://...``."""
    parts = urllib.parse.urlsplit(rabbit_url)
    return 'amqp://%s/%s' % (parts.netloc, parts.path.lstrip('/') or '/')


def delete_queues(url: str, queues: list[str]) -> None:
    with kombu.Connection(url, connect_timeout=2) as conn:
        for queue in queues:
            try:
                conn.default_channel.queue_delete(queue=queue)
            except conn.channel_errors:
                pass  # never declared: nothing to delete


def reset_ceilometer_transports() -> None:
    """Forget the transports Ceilometer caches per process.

    See ``test_ceilometer_plugin.reset_ceilometer_transports``: the cache
    is a module global keyed by URL only, so another test's transport
    would be reused with that test's configuration.
    """
    for transport in list(ceilometer_messaging.TRANSPORTS.values()):
        transport.cleanup()
    ceilometer_messaging.TRANSPORTS.clear()


class RawCapture:
    """oslo.messaging endpoint keeping every sample notification as sent."""

    def __init__(self) -> None:
        self.notifications = []
        self._lock = threading.Lock()

    def sample(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            self.notifications.append((publisher_id, event_type, payload))
        return oslo_messaging.NotificationResult.HANDLED

    def samples(self) -> list[dict]:
        with self._lock:
            return [s for _p, _e, payload in self.notifications
                    for s in payload['samples']]


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def bus(rabbit_url):
    """A private topic on the real broker; its queues deleted afterwards."""
    topic = 'qga-test-%s' % uuid.uuid4().hex[:12]
    pool = topic + '-raw'
    url = amqp_url(rabbit_url)
    try:
        yield {'url': rabbit_url, 'amqp': url, 'topic': topic, 'pool': pool}
    finally:
        delete_queues(url, ['%s.%s' % (topic, p) for p in PRIORITIES]
                      + [pool])


def write_pipeline(workdir: str, out: str) -> str:
    path = os.path.join(workdir, 'pipeline.yaml')
    with open(path, 'w') as f:
        f.write(f"""---
sources:
    - name: guest_agent_source
      meters:
          - "guest.*"
      sinks:
          - guest_agent_sink
sinks:
    - name: guest_agent_sink
      publishers:
          - file://{out}?json
""")
    return path


def start_notification_agent(workdir: str, bus: dict, out: str):
    """Ceilometer's NotificationService, listening, in this process."""
    conf_file = os.path.join(workdir, 'ceilometer.conf')
    with open(conf_file, 'w') as f:
        f.write(f"""[DEFAULT]
transport_url = {bus['url']}
pipeline_cfg_file = {write_pipeline(workdir, out)}
[oslo_messaging_notifications]
topics = {bus['topic']}
[notification]
pipelines = meter
notification_control_exchanges = ceilometer
[publisher]
telemetry_secret = {SECRET}
""")
    conf = ceilometer_service.prepare_service(['ceilometer-agent-notification'],
                                              [conf_file])
    reset_ceilometer_transports()
    service = notification.NotificationService(0, conf)
    service.run()
    return conf, service


def start_raw_capture(bus: dict):
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=bus['url'])
    capture = RawCapture()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=bus['topic'],
                                          exchange='ceilometer')],
        [capture], executor='threading', pool=bus['pool'])
    listener.start()
    return transport, listener, capture


def write_polling_conf(workdir: str, bus: dict, guests, sent: str) -> str:
    path = os.path.join(workdir, 'qga-polling.conf')
    with open(path, 'w') as f:
        f.write(f"""[DEFAULT]
transport_url = {bus['url']}
log_file = {workdir}/qga-polling.log
[oslo_messaging_notifications]
topics = {bus['topic']}
[qga_polling]
discovery = static
publishers = notifier://,file://{sent}
command_timeout = 1
guest_budget = 3
shutdown_timeout = 5
[static_discovery]
guests = {','.join('%s=%s' % g for g in guests)}
[publisher]
telemetry_secret = {SECRET}
""")
    return path


def test_notification_agent_receives_every_field(bus, qga_fleet, processes,
                                                 short_tmpdir):
    workdir = short_tmpdir
    received_file = os.path.join(workdir, 'ceilometer-samples.json')
    sent_file = os.path.join(workdir, 'sent.jsonl')
    _conf, service = start_notification_agent(workdir, bus, received_file)
    transport, listener, capture = start_raw_capture(bus)
    try:
        # A notification sent before its queue is bound is dropped by the
        # exchange: wait until both listeners consume.
        processes_mod.wait_until(
            lambda: (rabbit.queue_consumers(bus['amqp'], bus['topic'] + '.sample') >= 1
                     and rabbit.queue_consumers(bus['amqp'], bus['pool']) >= 1),
            20, 'listeners on %s' % bus['topic'])

        guests = [(UUIDS[i], g.socket) for i, g in enumerate(qga_fleet)]
        proc = processes.start(
            [sys.executable, '-m', 'ceilometer_qga.cmd.polling',
             '--config-file', write_polling_conf(workdir, bus, guests,
                                                 sent_file),
             '--once'],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err

        sent = read_jsonl(sent_file)
        assert len(sent) >= 3 * 26
        processes_mod.wait_until(
            lambda: (len(capture.samples()) >= len(sent)
                     and len(read_jsonl(received_file)) >= len(sent)),
            20, 'samples through the notification agent')
    finally:
        service.terminate()
        listener.stop()
        listener.wait()
        transport.cleanup()
        reset_ceilometer_transports()

    wire = capture.samples()
    received = read_jsonl(received_file)
    assert len(wire) == len(received) == len(sent)

    # On the bus: what Ceilometer's polling agent sends, signed so that
    # Ceilometer's own verify_signature accepts it (and a wrong secret not).
    for publisher_id, event_type, payload in capture.notifications:
        assert publisher_id == 'ceilometer.polling'
        assert event_type == 'telemetry.polling'
        assert list(payload) == ['samples']
    sent_by_id = {s['message_id']: s for s in sent}
    for s in wire:
        assert s == sent_by_id[s['message_id']]
        assert publisher_utils.verify_signature(s, SECRET)
        assert not publisher_utils.verify_signature(s, 'another secret')

    # Through TelemetryIpc, the sample pipeline and the file publisher:
    # every field Ceilometer keeps is what we sent.
    assert {r['resource_metadata']['instance_id'] for r in received} == set(
        UUIDS)
    for r in received:
        assert set(r) == SAMPLE_FIELDS
        ours = sent_by_id[r['id']]
        for field in SAMPLE_FIELDS - {'monotonic_time'}:
            assert r[field] == ours[WIRE_FIELD.get(field, field)], field
        # TelemetryIpc does not carry monotonic_time over (documented in
        # ceilometer/telemetry/notifications.py's build_sample).
        assert r['monotonic_time'] is None
    ups = {r['resource_id']: r['volume'] for r in received
           if r['name'] == 'guest.agent.up'}
    assert ups == {instance_id: 1 for instance_id in UUIDS}
