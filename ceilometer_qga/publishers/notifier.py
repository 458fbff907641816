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

"""``notifier://``: samples on the oslo.messaging bus, as Ceilometer's agent sends them.

What goes on the wire is what ``ceilometer-polling`` itself sends
(``ceilometer/polling/manager.py``), so Ceilometer's notification agent
takes our samples like its own: an oslo.messaging ``Notifier`` with the
``messagingv2`` envelope (always: the agent consumes the 2.0 envelope only;
sent by :mod:`.notification_driver`, ``messagingv2`` that also says whether
each send worked),
``publisher_id='ceilometer.polling'``, priority ``sample``,
``event_type='telemetry.polling'``, payload ``{'samples': [...]}`` in
batches of ``batch_size`` (Ceilometer's ``[polling] batch_size`` default,
50), on topic ``notifications`` of exchange ``ceilometer``.

URL: ``notifier://[?topic=T][&batch_size=N][&retry=R][&hold_off=S]``

* ``topic`` (repeatable): default ``[oslo_messaging_notifications] topics``.
  With several topics a batch counts as delivered only when every topic
  took it; one that reached some of them is sent again to all.
* ``batch_size``: samples per notification, default 50.
* ``retry``: connection retries per delivery attempt, default 1 (what
  Ceilometer's own notifier publisher uses for its queueing policies).
  Never unbounded: an unreachable bus must cost a bounded time.
* ``hold_off``: seconds after a failed delivery during which publish()
  only buffers, default 30.

Delivery is at-least-once, as for Ceilometer's own agent: a batch whose
publisher confirm is lost with its connection (the broker may have taken
it) counts as not delivered and is sent again whole, with the same
``message_id`` per sample, by which a consumer can drop the copy.

The bus is ``[oslo_messaging_notifications] transport_url``, else
``[DEFAULT] transport_url``, as for every OpenStack service.

Exchange: like Ceilometer (``ceilometer/messaging.py``) this calls
``oslo_messaging.set_transport_defaults('ceilometer')``.  That changes the
*default* of ``[DEFAULT] control_exchange`` for the whole process (every
transport created afterwards, and every ``ConfigOpts`` that has not read
the option yet), and a ``control_exchange`` set in the configuration file
still wins.  A warning is logged if the exchange in use is not
``ceilometer``, because Ceilometer's notification agent does not listen on
an exchange it was not told about.

How long a failed delivery attempt takes with the rabbit driver: when the
broker refuses
connections, about ``kombu_reconnect_delay`` (default 1 s) plus ``retry``
x ``rabbit_retry_interval`` (default 1 s).  When the connection stays open
but nothing answers (a hung broker, a black-holed network), the publisher
confirm is waited for about twice ``[oslo_messaging_rabbit]
heartbeat_timeout_threshold`` (default 60 s), and with ``retry`` > 0 the
reconnection adds ``retry`` + 1 connection attempts of about 5 s each;
lower that option for a tighter bound.  Either way publish() returns, and
the hold-off keeps the next ``hold_off`` seconds free of such waits.
"""

from __future__ import annotations

from typing import Any
import urllib.parse

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging

from ceilometer_qga import publishers
from ceilometer_qga.publishers import buffer
from ceilometer_qga.publishers import notification_driver

LOG = logging.getLogger(__name__)

EXCHANGE = 'ceilometer'
PUBLISHER_ID = 'ceilometer.polling'
EVENT_TYPE = 'telemetry.polling'
DEFAULT_BATCH_SIZE = 50
DEFAULT_RETRY = 1
DEFAULT_HOLD_OFF = 30.0


class NotifierPublisher(buffer.BufferedPublisher):
    """Samples to Ceilometer's notification agent over oslo.messaging."""

    def __init__(self, conf: cfg.ConfigOpts, url: urllib.parse.SplitResult,
                 opts: Any = None) -> None:
        super().__init__(conf, url, opts)
        if url.netloc or url.path not in ('', '/'):
            raise publishers.url_error(
                url, 'notifier:// takes no host or path; the bus is '
                     '[oslo_messaging_notifications] transport_url or '
                     '[DEFAULT] transport_url')
        params = publishers.query_params(
            url, ('topic', 'batch_size', 'retry', 'hold_off'))
        self.batch_size = publishers.int_param(
            url, params, 'batch_size', DEFAULT_BATCH_SIZE, minimum=1)
        self.hold_off = publishers.float_param(
            url, params, 'hold_off', DEFAULT_HOLD_OFF, minimum=0.0)
        self.retry = publishers.int_param(
            url, params, 'retry', DEFAULT_RETRY, minimum=0)
        if any(not topic for topic in params.get('topic', [])):
            raise publishers.url_error(url, 'empty topic')

        # Before the transport exists, so that its driver picks it up.
        oslo_messaging.set_transport_defaults(EXCHANGE)
        try:
            transport = oslo_messaging.get_notification_transport(conf)
        except (oslo_messaging.InvalidTransportURL,
                oslo_messaging.DriverLoadFailure, ValueError) as exc:
            # ValueError: urllib's own ("Invalid IPv6 URL"), which names
            # neither the option nor the URL.  The URL is not repeated: it
            # may hold the broker password.
            raise ValueError(
                '[oslo_messaging_notifications] transport_url / [DEFAULT] '
                'transport_url: %s' % exc) from exc
        self._notifier = oslo_messaging.Notifier(
            transport, publisher_id=PUBLISHER_ID,
            driver=notification_driver.DRIVER_NAME,
            topics=params.get('topic'), retry=self.retry)
        self.topics = list(params.get('topic')
                           or conf.oslo_messaging_notifications.topics)
        self.exchange = conf.control_exchange
        if self.exchange != EXCHANGE:
            LOG.warning('Publisher %(pub)s sends to exchange %(ex)r '
                        '([DEFAULT] control_exchange); Ceilometer\'s '
                        'notification agent listens on %(want)r unless '
                        '[notification] notification_control_exchanges '
                        'says otherwise.',
                        {'pub': super().describe(), 'ex': self.exchange,
                         'want': EXCHANGE})

    def describe(self) -> str:
        """The URL, and where it really goes."""
        topics = getattr(self, 'topics', None)
        if topics is None:
            return super().describe()
        return '%s (exchange %s, topics %s)' % (
            super().describe(), self.exchange, ','.join(topics))

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        outcome = notification_driver.outcome
        outcome.reset()
        self._notifier.sample({}, EVENT_TYPE, {'samples': batch})
        outcome.check(len(self.topics))

    def _release(self) -> None:
        self._notifier.transport.cleanup()
