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

"""An oslo.messaging notification driver that says whether it sent.

oslo.messaging's ``messagingv2`` driver catches every error of a send, logs
it with the whole payload and returns (``oslo_messaging/notify/
messaging.py``), and ``Notifier`` does the same with whatever a driver
raises (``oslo_messaging/notify/notifier.py``, ``_notify``): a caller never
learns that a notification was lost.  The ``notifier://`` publisher must
know, to keep a batch buffered until it is delivered.

:class:`ConfirmingMessagingV2Driver` is ``messagingv2`` -- the same 2.0
envelope, one send per topic on ``<topic>.<priority>``, through the
transport as every notification driver sends -- that records the outcome
of each send instead of logging the payload.  It is registered under the
``oslo.messaging.notify.drivers`` entry point as :data:`DRIVER_NAME`, so
``oslo_messaging.Notifier(..., driver=DRIVER_NAME)`` loads it through the
public driver interface.

The outcome goes to :data:`outcome`, one per thread: ``Notifier.sample()``
calls its drivers in the caller's thread, so a publisher reads, right after
its own call, what its own sends did, whatever other threads send.
"""

from __future__ import annotations

import threading
from typing import Any

import oslo_messaging
from oslo_messaging.notify import messaging

#: the entry-point name (setup.cfg, ``oslo.messaging.notify.drivers``)
DRIVER_NAME = 'qga-messagingv2'


class DeliveryNotConfirmed(Exception):
    """oslo.messaging did not say that a notification was sent."""


class Outcome(threading.local):
    """Sends seen by this thread since :meth:`reset`."""

    def __init__(self) -> None:
        self.sent = 0
        self.error: Exception | None = None

    def reset(self) -> None:
        """Forget earlier sends."""
        self.sent = 0
        self.error = None

    def check(self, expected: int) -> None:
        """Raise unless ``expected`` sends succeeded since :meth:`reset`.

        It counts *successes*: a send that never happened is a failure, so
        samples are never silently taken for sent.

        :raises Exception: the error of a failed send
        :raises DeliveryNotConfirmed: fewer sends than ``expected``
        """
        if self.error is not None:
            raise self.error
        if self.sent < expected:
            raise DeliveryNotConfirmed(
                'oslo.messaging confirmed %d of %d sends'
                % (self.sent, expected))


outcome = Outcome()


class ConfirmingMessagingV2Driver(messaging.MessagingV2Driver):
    """``messagingv2`` that records each send in :data:`outcome`."""

    def notify(self, ctxt: Any, message: dict[str, Any], priority: str,
               retry: int | None) -> None:
        """Send ``message`` to every topic; record, never raise or log it."""
        priority = priority.lower()
        for topic in self.topics:
            target = oslo_messaging.Target(topic='%s.%s' % (topic, priority))
            try:
                self.transport._send_notification(
                    target, ctxt, message, version=self.version, retry=retry)
            except Exception as exc:
                outcome.error = exc
            else:
                outcome.sent += 1
