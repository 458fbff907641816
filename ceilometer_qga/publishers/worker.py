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

"""Publishing off the sweep's path: one delivery thread per publisher.

A publisher's ``publish()`` may block for as long as its destination
makes it: a hung broker (connection open, nothing answered) holds the
notifier for about twice ``heartbeat_timeout_threshold``.  Sweeps must keep
their schedule whatever the publishers do, and one stuck publisher must not
hold back another, so :class:`PublishWorker` gives each publisher a thread
of its own fed by a bounded queue (a
:class:`~ceilometer_qga.publishers.buffer.SampleBuffer` of ``[qga_polling]
buffer_size`` samples or the newest sweep, whichever is larger; oldest
dropped, counted and logged once per overflow).
:meth:`PublishWorker.submit` never blocks: while the notifier is stuck its
queue keeps receiving, and the file publisher's worker delivers as usual.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from oslo_log import log as logging

from ceilometer_qga.publishers import base
from ceilometer_qga.publishers import buffer

LOG = logging.getLogger(__name__)

#: how long close() waits for a thread stuck in publish() to notice
_JOIN_TIMEOUT = 1.0


class PublishWorker:
    """A publisher, its delivery thread and its bounded queue.

    :param publisher: where the samples go
    :param capacity: most samples queued (``[qga_polling] buffer_size``)
    """

    def __init__(self, publisher: base.Publisher, capacity: int) -> None:
        self.publisher = publisher
        self._queue = buffer.SampleBuffer(
            capacity, '%s (queue)' % publisher.describe())
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name='publish %s' % publisher.describe())
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Samples dropped because the queue was full, since start."""
        return self._queue.dropped

    @property
    def queued(self) -> int:
        """Samples waiting for the delivery thread."""
        return len(self._queue)

    def submit(self, messages: list[dict[str, Any]]) -> None:
        """Queue signed sample dicts for delivery; never blocks.

        The newest submission (a sweep) is always queued whole, even when
        it alone is larger than the capacity: ``buffer_size`` bounds what is
        kept for a destination that is not taking samples, and one sweep of
        a large host (1,000 guests: about 25,000 samples) is more than its
        default.  Older submissions still waiting make room first.
        """
        self._queue.extend(messages, whole=True)
        with self._cond:
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until the queue is handed over; True if it was in time."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while self._busy or len(self._queue):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def flush(self, timeout: float) -> bool:
        """Drain the queue, then flush the publisher, within ``timeout``.

        :returns: True when nothing is left undelivered
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        if not self.drain(timeout):
            return False
        return self.publisher.flush(max(deadline - time.monotonic(), 0.0))

    def close(self, timeout: float) -> None:
        """Deliver what can be within ``timeout``, stop, close the publisher."""
        self.drain(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(_JOIN_TIMEOUT)
        left = self.queued
        if left:
            LOG.warning('Publisher %(pub)s stops with %(left)d samples still '
                        'queued; they are lost.',
                        {'pub': self.publisher.describe(), 'left': left})
        if self._thread.is_alive():
            # Still inside publish(): closing would wait for it (the
            # publisher's lock) as long again.  The thread is a daemon and
            # ends with the process.
            LOG.warning('Publisher %s is still stuck delivering; not '
                        'waiting for it', self.publisher.describe())
            return
        self.publisher.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not len(self._queue):
                    self._cond.wait()
                if self._stopping:
                    return
                batch = self._queue.take()
                self._busy = True
            try:
                self.publisher.publish(batch)
                self._queue.delivered()
            except Exception:
                # The contract says publish() does not raise; if one does
                # anyway, that batch is its loss and delivery goes on.
                LOG.exception('Publisher %s failed',
                              self.publisher.describe())
            finally:
                # Not kept while waiting for the next sweep: a sweep's
                # samples are large, and holding them would keep two
                # sweeps in memory at once.
                batch = []
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
