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

"""NotifierPublisher against a real RabbitMQ, including a broker outage.

Everything here is real: RabbitMQ on 127.0.0.1:5672 (started by the
``rabbit_url`` fixture when it does not answer), oslo.messaging on both
ends, Ceilometer's own ``TelemetryIpc`` endpoint (the one its notification
agent uses for ``telemetry.polling``) and raw AMQP reads with kombu to see
the exact envelope.  The outage is a real loss of the TCP connection: the
publisher reaches the broker through a small TCP proxy run by the test,
which the test cuts (listener and every connection closed) and restores on
the same port.

Isolation: the module works in a RabbitMQ virtual host of its own, made
with ``rabbitmqctl`` and deleted afterwards with everything in it.  On the
shared ``/`` host every listener bound to ``notifications.sample`` of
exchange ``ceilometer`` also gets what other tests (or a real Ceilometer)
publish there, and oslo.messaging's notifier declares a default queue
named after the routing key (``notifications.sample``), kept so that
notifications wait for Ceilometer's agent, which nothing consumes here.
Each listener still uses a pool (a queue) of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import uuid

from ceilometer.publisher.utils import verify_signature
import kombu
from oslo_config import cfg
import oslo_messaging
import pytest

from ceilometer_qga import conf as qga_conf
from ceilometer_qga.publishers import notifier
from ceilometer_qga import sample
from tests.fixtures import rabbit
from tests.fixtures.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.functional, pytest.mark.timeout(60)]

SECRET = 'change this for valid signing'
EXCHANGE = 'ceilometer'
ROUTING_KEY = 'notifications.sample'
WIRE_KEYS = [
    'source', 'counter_name', 'counter_type', 'counter_unit',
    'counter_volume', 'user_id', 'user_name', 'project_id', 'project_name',
    'resource_id', 'timestamp', 'resource_metadata', 'message_id',
    'monotonic_time', 'message_signature',
]
# Bound on one publish() while the broker is unreachable: with retry=1 and
# kombu_reconnect_delay=0 an attempt costs about rabbit_retry_interval (1 s).
PUBLISH_BOUND = 8.0
RECEIVE_TIMEOUT = 20.0
# heartbeat_timeout_threshold of the silent-broker test, in seconds.
HEARTBEAT = 1


def _messages(start: int, stop: int) -> list[dict]:
    return [sample.to_message(sample.Sample(
        name='guest.filesystem.usage', type='gauge', unit='%',
        volume=n + 0.5, user_id='user-1', project_id='project-1',
        resource_id='2b0d9c8e-0000-4000-8000-00000000000%d-_srv' % (n % 10),
        timestamp='2026-08-22T10:00:%02d.000123' % (n % 60),
        resource_metadata={'display_name': 'vm-\u00e9t\u00e9',
                           'mountpoint': '/srv', 'n': n,
                           'flavor': {'name': 'm1.small', 'vcpus': 1},
                           'tags': ['a', 'b\u00e4']},
        monotonic_time=1000.0 + n, user_name='alice', project_name='demo'),
        SECRET) for n in range(start, stop)]


def _ids(messages: list[dict]) -> list[str]:
    return [m['message_id'] for m in messages]


def _conf(tmp_path, transport_url: str, heartbeat: int = 60,
          **qga_polling) -> cfg.ConfigOpts:
    """A configuration read from a file, as qga-polling reads its own."""
    qga_polling.setdefault('shutdown_timeout', 2)
    path = tmp_path / ('qga-polling-%s.conf' % uuid.uuid4().hex[:6])
    path.write_text('\n'.join([
        '[DEFAULT]',
        'transport_url = %s' % transport_url,
        '[oslo_messaging_rabbit]',
        # A failed attempt then costs rabbit_retry_interval (1 s, its
        # minimum) instead of that plus a default 1 s pause first.
        'kombu_reconnect_delay = 0',
        # Also the socket timeout of the rabbit driver: what bounds an
        # attempt on a connection that stays open but goes silent.
        'heartbeat_timeout_threshold = %d' % heartbeat,
        '[oslo_messaging_notifications]',
        # The publisher must ignore this: only messagingv2 reaches Ceilometer.
        'driver = noop',
        '[publisher]',
        'telemetry_secret = %s' % SECRET,
        '[qga_polling]',
    ] + ['%s = %s' % item for item in qga_polling.items()]) + '\n')
    conf = cfg.ConfigOpts()
    qga_conf.register_opts(conf)
    conf([], project='qga-test', default_config_files=[str(path)],
         default_config_dirs=[])
    return conf


class Received:
    """oslo.messaging notification endpoint: keeps every sample notification."""

    def __init__(self) -> None:
        self.notifications: list[dict] = []
        self._cond = threading.Condition()

    def sample(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._cond:
            self.notifications.append({'publisher_id': publisher_id,
                                       'event_type': event_type,
                                       'payload': payload,
                                       'metadata': metadata})
            self._cond.notify_all()

    @property
    def samples(self) -> list[dict]:
        with self._cond:
            return [s for n in self.notifications
                    for s in n['payload']['samples']]

    def wait_for_samples(self, count: int) -> list[dict]:
        with self._cond:
            self._cond.wait_for(
                lambda: sum(len(n['payload']['samples'])
                            for n in self.notifications) >= count,
                timeout=RECEIVE_TIMEOUT)
        samples = self.samples
        assert len(samples) >= count, (
            'received %d of %d samples' % (len(samples), count))
        return samples


class CeilometerPipeline:
    """What Ceilometer's TelemetryIpc endpoint hands its pipeline."""

    def __init__(self) -> None:
        self.samples: list = []
        self._cond = threading.Condition()

    def __enter__(self):
        return self._publish

    def __exit__(self, *exc_info) -> None:
        return None

    def _publish(self, samples: list) -> None:
        with self._cond:
            self.samples.extend(samples)
            self._cond.notify_all()

    def wait_for(self, count: int) -> list:
        with self._cond:
            self._cond.wait_for(lambda: len(self.samples) >= count,
                                timeout=RECEIVE_TIMEOUT)
            return list(self.samples)


@pytest.fixture(scope='module')
def vhost(rabbit_vhost) -> str:
    """This module's own virtual host (tests/fixtures/rabbit.py)."""
    return rabbit_vhost


def _url(vhost: str, port: int = rabbit.PORT) -> str:
    return rabbit.vhost_url(vhost, port)


class Bus:
    """Consumers on the real broker, in the module's virtual host."""

    def __init__(self, vhost: str) -> None:
        url = _url(vhost)
        self._listener_conf = cfg.ConfigOpts()
        self._listener_conf([], project='qga-test', default_config_files=[],
                            default_config_dirs=[])
        self._transport = oslo_messaging.get_notification_transport(
            self._listener_conf, url=url)
        self._listeners: list = []
        self._amqp = kombu.Connection('amqp://guest:guest@%s:%d/%s'
                                      % (rabbit.HOST, rabbit.PORT, vhost))

    @staticmethod
    def _pool() -> str:
        return 'qga-test-pool-%s' % uuid.uuid4().hex[:12]

    def _target(self) -> oslo_messaging.Target:
        return oslo_messaging.Target(topic='notifications', exchange=EXCHANGE)

    def listen(self) -> Received:
        """A plain notification listener with its own pool (queue)."""
        endpoint = Received()
        listener = oslo_messaging.get_notification_listener(
            self._transport, [self._target()], [endpoint],
            executor='threading', pool=self._pool())
        listener.start()
        self._listeners.append(listener)
        return endpoint

    def listen_like_ceilometer(self) -> CeilometerPipeline:
        """Ceilometer's TelemetryIpc in a batch listener, as its agent runs it."""
        from ceilometer.telemetry import notifications

        pipeline = CeilometerPipeline()
        listener = oslo_messaging.get_batch_notification_listener(
            self._transport, [self._target()],
            [notifications.TelemetryIpc(None, pipeline)],
            executor='threading', pool=self._pool(), allow_requeue=True,
            batch_size=100, batch_timeout=0.2)
        listener.start()
        self._listeners.append(listener)
        return pipeline

    def raw_queue(self) -> str:
        """A queue bound like Ceilometer's, read without oslo.messaging."""
        name = self._pool()
        channel = self._amqp.channel()
        # Declared exactly as oslo.messaging declares it (not durable, not
        # auto-deleted), or RabbitMQ refuses the second declaration.
        channel.exchange_declare(EXCHANGE, 'topic', durable=False,
                                 auto_delete=False)
        channel.queue_declare(name, durable=False, auto_delete=False)
        channel.queue_bind(name, EXCHANGE, ROUTING_KEY)
        channel.close()
        return name

    def get_raw(self, queue: str, count: int) -> list:
        channel = self._amqp.channel()
        bodies = []
        deadline = time.monotonic() + RECEIVE_TIMEOUT
        try:
            while len(bodies) < count and time.monotonic() < deadline:
                message = channel.basic_get(queue, no_ack=True)
                if message is None:
                    time.sleep(0.02)
                    continue
                bodies.append(message)
        finally:
            channel.close()
        return bodies

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
            listener.wait()
        self._transport.cleanup()
        self._amqp.release()


@pytest.fixture
def bus(vhost):
    the_bus = Bus(vhost)
    yield the_bus
    the_bus.close()


@pytest.fixture
def proxy():
    the_proxy = TcpProxy(rabbit.HOST, rabbit.PORT).start()
    yield the_proxy
    the_proxy.stop()


@pytest.fixture
def make_publisher():
    made = []

    def make(conf: cfg.ConfigOpts, url: str = 'notifier://'):
        pub = notifier.NotifierPublisher(conf, urllib.parse.urlsplit(url))
        made.append(pub)
        return pub
    yield make
    for pub in made:
        pub.close()


def test_samples_arrive_as_ceilometer_polling_sends_them(
        bus, vhost, make_publisher, tmp_path):
    received = bus.listen()
    ceilometer = bus.listen_like_ceilometer()
    raw = bus.raw_queue()
    pub = make_publisher(_conf(tmp_path, _url(vhost)))
    messages = _messages(0, 120)

    pub.publish(messages)

    samples = received.wait_for_samples(120)
    assert (pub.published, pub.buffered, pub.dropped) == (120, 0, 0)
    # Ceilometer's [polling] batch_size: 50 samples per notification.
    assert [len(n['payload']['samples'])
            for n in received.notifications] == [50, 50, 20]
    for notification in received.notifications:
        assert notification['publisher_id'] == 'ceilometer.polling'
        assert notification['event_type'] == 'telemetry.polling'
        assert list(notification['payload']) == ['samples']
    assert samples == messages
    for got in samples:
        assert list(got) == WIRE_KEYS
        assert verify_signature(got, SECRET)
    from ceilometer.publisher import utils
    assert all(utils.verify_signature(got, SECRET) for got in samples)

    # The messagingv2 envelope on exchange 'ceilometer', routing key
    # notifications.sample, although [oslo_messaging_notifications] driver
    # says noop.
    bodies = bus.get_raw(raw, 3)
    assert len(bodies) == 3
    for body in bodies:
        assert body.delivery_info['exchange'] == EXCHANGE
        assert body.delivery_info['routing_key'] == ROUTING_KEY
        envelope = json.loads(body.body)
        assert envelope['oslo.version'] == '2.0'
        inner = json.loads(envelope['oslo.message'])
        assert inner['priority'] == 'SAMPLE'
        assert inner['publisher_id'] == 'ceilometer.polling'
        assert inner['event_type'] == 'telemetry.polling'

    # Ceilometer's own endpoint rebuilds every sample.
    rebuilt = ceilometer.wait_for(120)
    assert [s.id for s in rebuilt] == _ids(messages)
    assert [(s.name, s.type, s.unit, s.volume, s.resource_id)
            for s in rebuilt] == [
        (m['counter_name'], m['counter_type'], m['counter_unit'],
         m['counter_volume'], m['resource_id']) for m in messages]


def test_broker_restart_between_publishes_costs_nothing(
        bus, vhost, proxy, make_publisher, tmp_path):
    # retry=1 lets the first attempt after a silent reconnect succeed: a
    # broker restart between two sweeps buffers nothing.
    received = bus.listen()
    pub = make_publisher(
        _conf(tmp_path, _url(vhost, proxy.port)))
    messages = _messages(0, 10)
    pub.publish(messages[:5])
    received.wait_for_samples(5)
    proxy.cut()
    proxy.restore()
    pub.publish(messages[5:])
    assert (pub.published, pub.buffered, pub.dropped) == (10, 0, 0)
    assert _ids(received.wait_for_samples(10)) == _ids(messages)


def _publish_during_outage(pub, messages: list[dict], chunk: int) -> None:
    for start in range(0, len(messages), chunk):
        began = time.monotonic()
        pub.publish(messages[start:start + chunk])
        took = time.monotonic() - began
        assert took < PUBLISH_BOUND, 'publish() blocked %.1f s' % took


def test_outage_loses_nothing(bus, vhost, proxy, make_publisher, tmp_path):
    received = bus.listen()
    pub = make_publisher(
        _conf(tmp_path, _url(vhost, proxy.port),
              buffer_size=1000),
        # hold_off=0: every publish() during the outage really tries.
        'notifier://?hold_off=0')
    before = _messages(0, 5)
    pub.publish(before)
    received.wait_for_samples(5)

    proxy.cut()
    during = _messages(5, 125)
    _publish_during_outage(pub, during, chunk=30)
    assert (pub.published, pub.buffered, pub.dropped) == (5, 120, 0)
    assert len(received.samples) == 5

    proxy.restore()
    assert pub.flush(20.0)
    samples = received.wait_for_samples(125)
    assert _ids(samples) == _ids(before + during)
    assert (pub.published, pub.buffered, pub.dropped) == (125, 0, 0)


def test_outage_overflow_drops_exactly_the_oldest(
        bus, vhost, proxy, make_publisher, caplog, tmp_path):
    caplog.set_level(logging.WARNING, logger='ceilometer_qga.publishers')
    received = bus.listen()
    pub = make_publisher(
        _conf(tmp_path, _url(vhost, proxy.port),
              buffer_size=40))
    pub.publish(_messages(0, 5))
    received.wait_for_samples(5)

    proxy.cut()
    during = _messages(5, 105)
    # Default hold_off: the first publish() tries and fails, the others
    # only buffer.
    _publish_during_outage(pub, during, chunk=20)
    assert (pub.buffered, pub.dropped) == (40, 60)
    overflow = [r.getMessage() for r in caplog.records
                if 'buffer full' in r.getMessage()]
    assert len(overflow) == 1, overflow

    proxy.restore()
    assert pub.flush(20.0)
    samples = received.wait_for_samples(45)
    assert _ids(samples[5:]) == _ids(during[60:])
    assert (pub.published, pub.buffered, pub.dropped) == (45, 0, 60)
    summary = [r.getMessage() for r in caplog.records
               if 'delivers again' in r.getMessage()]
    assert len(summary) == 1 and '60 samples were dropped' in summary[0]


def test_silent_broker_costs_a_bounded_time(bus, vhost, proxy,
                                            make_publisher, tmp_path):
    # A broker (or network) that keeps the connection open but answers
    # nothing: no RST, so only the socket timeout ends the attempt, after
    # about twice heartbeat_timeout_threshold; the default retry=1 then
    # adds two connection attempts that time out after about 5 s each.
    received = bus.listen()
    pub = make_publisher(
        _conf(tmp_path, _url(vhost, proxy.port), heartbeat=HEARTBEAT))
    messages = _messages(0, 10)
    pub.publish(messages[:5])
    received.wait_for_samples(5)

    proxy.pause()
    began = time.monotonic()
    pub.publish(messages[5:])
    assert time.monotonic() - began < 2 * HEARTBEAT + 6 + PUBLISH_BOUND
    assert (pub.published, pub.buffered) == (5, 5)

    proxy.cut()
    proxy.restore()
    assert pub.flush(20.0)
    assert _ids(received.wait_for_samples(10)) == _ids(messages)
