"""``notifier://``: samples on the oslo.messaging bus, as Ceilometer's agent sends them.

What goes on the wire is what ``ceilometer-polling`` itself sends
(``ceilometer/polling/manager.py``), so Ceilometer's notification agent
takes our samples like its own: an oslo.messaging ``Notifier`` with driver
``messagingv2`` (always: the agent consumes the 2.0 envelope only),
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

How long a failed delivery attempt takes with the rabbit driver (measured
with oslo.messaging 18.3 and RabbitMQ 3.10): when the broker refuses
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

LOG = logging.getLogger(__name__)

DRIVER = 'messagingv2'
EXCHANGE = 'ceilometer'
PUBLISHER_ID = 'ceilometer.polling'
EVENT_TYPE = 'telemetry.polling'
DEFAULT_BATCH_SIZE = 50
DEFAULT_RETRY = 1
DEFAULT_HOLD_OFF = 30.0


class DeliveryNotConfirmed(Exception):
    """oslo.messaging did not say that a notification was sent."""


class _DeliveryWatch:
    """Learns whether oslo.messaging really sent a notification.

    ``Notifier.sample()`` never raises: its messaging drivers catch every
    error, log it with the whole payload and return (documented at the top
    of ``oslo_messaging/notify/messaging.py``).  The outcome is visible only
    in ``Transport._send_notification``, which the driver calls once per
    topic.  This wraps that method on our own transport instance -- no
    other object is touched -- to record each call's outcome, and swallows
    the error: the publisher logs one short line instead of the driver's
    traceback with fifty samples in it.

    It counts *successes*: if a future oslo.messaging stopped calling this
    method, no success would be seen, the batches would stay buffered and
    be reported, and samples would never be silently taken for sent.
    """

    def __init__(self, transport: oslo_messaging.Transport) -> None:
        self._send = transport._send_notification
        transport._send_notification = self._send_and_record
        self.sent = 0
        self.error: Exception | None = None

    def reset(self) -> None:
        self.sent = 0
        self.error = None

    def _send_and_record(self, target, ctxt, message, version, retry=None):
        try:
            result = self._send(target, ctxt, message, version, retry=retry)
        except Exception as exc:
            self.error = exc
            return None
        self.sent += 1
        return result

    def check(self, expected: int) -> None:
        """Raise unless ``expected`` sends succeeded since :meth:`reset`."""
        if self.error is not None:
            raise self.error
        if self.sent < expected:
            raise DeliveryNotConfirmed(
                'oslo.messaging confirmed %d of %d sends'
                % (self.sent, expected))


class NotifierPublisher(buffer.BufferedPublisher):
    """Samples to Ceilometer's notification agent over oslo.messaging."""

    def __init__(self, conf: cfg.ConfigOpts,
                 url: urllib.parse.SplitResult) -> None:
        super().__init__(conf, url)
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
                oslo_messaging.DriverLoadFailure) as exc:
            raise ValueError(
                '[oslo_messaging_notifications] transport_url / [DEFAULT] '
                'transport_url: %s' % exc) from exc
        self._watch = _DeliveryWatch(transport)
        self._notifier = oslo_messaging.Notifier(
            transport, publisher_id=PUBLISHER_ID, driver=DRIVER,
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
        self._watch.reset()
        self._notifier.sample({}, EVENT_TYPE, {'samples': batch})
        self._watch.check(len(self.topics))

    def _release(self) -> None:
        self._notifier.transport.cleanup()
