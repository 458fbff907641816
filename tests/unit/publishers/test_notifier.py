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

"""NotifierPublisher without a broker: URL, settings, unreachable bus.

The unreachable bus is real: a TCP port that is bound but not listening,
so every connection attempt of oslo.messaging's rabbit driver is refused
at once.  Delivery to a real RabbitMQ is tested in
tests/functional/test_notifier_rabbit.py.
"""

from __future__ import annotations

import logging
import socket
import time
import urllib.parse

import pytest

from ceilometer_qga.publishers import notifier


@pytest.fixture
def refused_port():
    """A localhost port that refuses connections for the test's duration."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    yield sock.getsockname()[1]
    sock.close()


def _publisher(conf, url='notifier://'):
    return notifier.NotifierPublisher(conf, urllib.parse.urlsplit(url))


def _messages(count: int) -> list[dict]:
    return [{'counter_name': 'guest.agent.up', 'counter_volume': 1, 'n': n}
            for n in range(count)]


def test_defaults_follow_ceilometer(make_conf):
    pub = _publisher(make_conf())
    assert pub.batch_size == 50
    assert pub.retry == 1
    assert pub.topics == ['notifications']
    assert pub.exchange == 'ceilometer'
    assert pub.describe() == ('notifier:// (exchange ceilometer, '
                              'topics notifications)')
    pub.close()


def test_url_parameters(make_conf):
    pub = _publisher(make_conf(), 'notifier://?topic=a&topic=b&batch_size=7'
                                  '&retry=0&hold_off=2.5')
    assert (pub.topics, pub.batch_size, pub.retry, pub.hold_off) == (
        ['a', 'b'], 7, 0, 2.5)
    pub.close()


def test_topics_and_driver_from_configuration(make_conf):
    # The configured notification driver is not used: only messagingv2 is
    # what Ceilometer consumes (the functional test checks the wire).
    pub = _publisher(make_conf({'oslo_messaging_notifications': {
        'topics': 'x,y', 'driver': 'log'}}))
    assert pub.topics == ['x', 'y']
    pub.close()


def test_configured_exchange_wins_with_a_warning(make_conf, caplog):
    pub = _publisher(make_conf({'DEFAULT': {'control_exchange': 'nova'}}))
    assert pub.exchange == 'nova'
    assert any("exchange 'nova'" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)
    pub.close()


@pytest.mark.parametrize('url, reason', [
    ('notifier://rabbit:5672', 'takes no host or path'),
    ('notifier:///topic', 'takes no host or path'),
    ('notifier://?driver=messaging', 'unknown parameter(s) driver'),
    ('notifier://?batch_size=0', 'batch_size must be at least 1'),
    ('notifier://?batch_size=many', 'not an integer'),
    ('notifier://?retry=-1', 'retry must be at least 0'),
    ('notifier://?hold_off=-3', 'finite number of at least 0'),
    ('notifier://?topic=', 'empty topic'),
])
def test_bad_url_names_the_option(make_conf, url, reason):
    with pytest.raises(ValueError) as info:
        _publisher(make_conf(), url)
    message = str(info.value)
    assert '[qga_polling] publishers' in message
    assert url.split('?')[0] in message
    assert reason in message


def test_bad_transport_url_names_that_option(make_conf):
    conf = make_conf({'DEFAULT': {'transport_url': 'nosuchdriver://x/'}})
    with pytest.raises(ValueError, match=r'\[DEFAULT\] transport_url'):
        _publisher(conf)


def test_unreachable_bus_buffers_without_raising(make_conf, refused_port):
    conf = make_conf({
        'DEFAULT': {'transport_url':
                    'rabbit://guest:guest@127.0.0.1:%d/' % refused_port},
        'oslo_messaging_rabbit': {'kombu_reconnect_delay': 0},
        'qga_polling': {'buffer_size': 120, 'shutdown_timeout': 1},
    })
    pub = _publisher(conf, 'notifier://?retry=0&hold_off=0')
    started = time.monotonic()
    pub.publish(_messages(100))
    pub.publish(_messages(50))
    assert time.monotonic() - started < 10
    assert (pub.published, pub.buffered, pub.dropped) == (0, 120, 30)
    assert not pub.flush(1.0)
    pub.close()
