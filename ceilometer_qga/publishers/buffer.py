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

"""Holding samples while a destination is unreachable.

:class:`SampleBuffer` is the bounded FIFO of the publisher contract
(:mod:`ceilometer_qga.publishers.base`): when it is full the *oldest*
samples make room, are counted, and each overflow episode is logged once
when it starts and once when delivery resumes -- never once per sample,
because during a long outage that would be thousands of lines per sweep.

:class:`BufferedPublisher` is the delivery loop the publishers share: it
admits only samples that can be encoded, delivers the backlog before new
samples so that order is kept, puts a failed batch back at the front, holds
off for a while after a failure so that a dead destination does not cost
every caller a timeout, and never lets an exception out of
:meth:`~BufferedPublisher.publish`.  A plugin only says how to deliver one
batch (:meth:`~BufferedPublisher._deliver`).
"""

from __future__ import annotations

import abc
import collections
from collections.abc import Iterable
from collections.abc import Sequence
import threading
import time
from typing import Any
import urllib.parse

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga.publishers import base
from ceilometer_qga import sample as sample_mod

LOG = logging.getLogger(__name__)


class SampleBuffer:
    """A bounded, thread-safe FIFO of sample dicts that drops the oldest.

    :param capacity: most samples held (``[qga_polling] buffer_size``); 0
        holds nothing, so whatever cannot be delivered at once is dropped.
    :param owner: what the samples were meant for, for log lines.
    """

    def __init__(self, capacity: int, owner: str) -> None:
        if capacity < 0:
            raise ValueError('buffer capacity must be >= 0, not %d' % capacity)
        self.capacity = capacity
        self.owner = owner
        #: samples dropped because the buffer was full, since start
        self.dropped = 0
        self._items: collections.deque[dict[str, Any]] = collections.deque()
        self._lock = threading.Lock()
        # Drops since the current overflow episode began; 0 when none is
        # going on.
        self._episode_drops = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def extend(self, items: Iterable[dict[str, Any]], whole: bool = False
               ) -> int:
        """Append samples as the newest; return how many old ones were dropped.

        :param whole: keep all of ``items`` even when they alone exceed the
            capacity (then only older samples make room): a hand-over queue
            in front of a working publisher must pass one whole sweep on,
            however large the host.
        """
        with self._lock:
            before = len(self._items)
            self._items.extend(items)
            floor = len(self._items) - before if whole else 0
            return self._trim(floor)

    def take(self, count: int | None = None) -> list[dict[str, Any]]:
        """Remove and return up to ``count`` of the oldest samples (all if None)."""
        with self._lock:
            if count is None or count >= len(self._items):
                taken = list(self._items)
                self._items.clear()
                return taken
            return [self._items.popleft() for _ in range(count)]

    def put_back(self, items: Sequence[dict[str, Any]]) -> int:
        """Return samples that could not be delivered to the front.

        They are older than anything still in the buffer, so if newer
        samples filled it in the meantime, they are the first dropped.
        Returns how many were dropped.
        """
        with self._lock:
            self._items.extendleft(reversed(items))
            return self._trim()

    def delivered(self) -> None:
        """Note that delivery works again, which ends an overflow episode."""
        with self._lock:
            drops, self._episode_drops = self._episode_drops, 0
            total = self.dropped
        if drops:
            LOG.warning('Publisher %(owner)s delivers again: %(drops)d '
                        'samples were dropped while its buffer was full '
                        '(%(total)d since start).',
                        {'owner': self.owner, 'drops': drops, 'total': total})

    def _trim(self, floor: int = 0) -> int:
        """Drop the oldest samples beyond capacity (or ``floor``, if more);
        the lock is held.
        """
        excess = len(self._items) - max(self.capacity, floor)
        if excess <= 0:
            return 0
        for _ in range(excess):
            self._items.popleft()
        self.dropped += excess
        starting = self._episode_drops == 0
        self._episode_drops += excess
        if starting:
            # Logged under the lock so that two threads cannot both believe
            # they started the episode; this happens once per episode.
            LOG.warning('Publisher %(owner)s: sample buffer full '
                        '(%(capacity)d samples); dropped the %(excess)d '
                        'oldest. Further drops are counted and reported when '
                        'delivery resumes (%(total)d dropped since start).',
                        {'owner': self.owner, 'capacity': self.capacity,
                         'excess': excess, 'total': self.dropped})
        return excess


class BufferedPublisher(base.Publisher, metaclass=abc.ABCMeta):
    """A publisher that buffers, batches and retries; plugins add delivery.

    Subclasses set :attr:`batch_size` and :attr:`hold_off` (typically from
    their URL) and implement :meth:`_deliver`; they may override
    :meth:`_sync` (make delivered data durable, run by :meth:`flush`) and
    :meth:`_release` (run by :meth:`close`).

    Delivery is serialised by one lock: at most one batch per publisher is
    in flight, which keeps the order of samples and the buffer accounting
    simple.  ``publish()`` from a second thread waits for the first.
    """

    #: samples per delivery; None delivers everything waiting at once
    batch_size: int | None = None
    #: seconds after a failed delivery during which publish() only buffers
    hold_off: float = 0.0

    def __init__(self, conf: cfg.ConfigOpts, url: urllib.parse.SplitResult,
                 opts: Any = None) -> None:
        super().__init__(conf, url, opts)
        self._buffer = SampleBuffer(conf.qga_polling.buffer_size,
                                    base.display_url(url))
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._failing_since: float | None = None
        self._rejected = 0

    @abc.abstractmethod
    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Deliver one batch, completely, or raise.

        Any exception means "not delivered": the batch goes back into the
        buffer and is tried again later.
        """

    def _sync(self) -> None:
        """Make delivered samples durable (run at the end of flush)."""

    def _release(self) -> None:
        """Release connections and files (run by close)."""

    @property
    def buffered(self) -> int:
        """Samples waiting for delivery."""
        return len(self._buffer)

    def publish(self, messages: list[dict[str, Any]]) -> None:
        """Deliver signed sample dicts, buffering what cannot go now.

        Never raises because of the destination.  Returns after at most one
        failed delivery attempt (whose length the plugin bounds), or at once
        while holding off after a failure.
        """
        with self._lock:
            admitted = self._admit(messages)
            if time.monotonic() < self._retry_at:
                self._buffer.extend(admitted)
            else:
                self._send(admitted)
            self._count()

    def flush(self, timeout: float) -> bool:
        """Deliver the backlog now, ignoring any hold-off.

        Stops at the first failed batch, or when ``timeout`` has passed
        between two batches (one batch in flight is not interrupted).
        :returns: True when nothing is left waiting.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            return False
        try:
            empty = self._drain(deadline)
            try:
                self._sync()
            except Exception as exc:
                LOG.warning('Publisher %(pub)s could not make samples '
                            'durable: %(err)s',
                            {'pub': self.describe(), 'err': exc})
                empty = False
            self._count()
            return empty
        finally:
            self._lock.release()

    def close(self) -> None:
        """Flush for at most ``[qga_polling] shutdown_timeout``, then release."""
        if not self.flush(self.conf.qga_polling.shutdown_timeout):
            LOG.warning('Publisher %(pub)s stops with %(left)d samples '
                        'undelivered; they are lost (%(dropped)d dropped '
                        'before).',
                        {'pub': self.describe(), 'left': self.buffered,
                         'dropped': self.dropped})
        self._release()

    def _encode(self, message: dict[str, Any]) -> bytes:
        """The UTF-8 JSON of one sample; raises if it has none.

        Strict JSON (no NaN or infinity, no lone surrogates), so that every
        sample a publisher accepts is valid for any consumer.
        """
        return sample_mod.encode(message)

    def _admit(self, messages: Iterable[dict[str, Any]]
               ) -> list[dict[str, Any]]:
        # A sample that cannot be encoded would fail every delivery attempt
        # and, at the head of the buffer, block everything behind it; it is
        # refused here, once.
        admitted = []
        for message in messages:
            if getattr(message, 'checked', False):
                # The poller encoded it already (sample.Message).
                admitted.append(message)
                continue
            try:
                self._encode(message)
            except (TypeError, ValueError) as exc:
                self._rejected += 1
                LOG.error('Publisher %(pub)s drops sample %(name)s of '
                          '%(res)s: not encodable as JSON (%(err)s).',
                          {'pub': self.describe(),
                           'name': message.get('counter_name'),
                           'res': message.get('resource_id'), 'err': exc})
            else:
                admitted.append(message)
        return admitted

    def _send(self, messages: list[dict[str, Any]]) -> None:
        """Deliver the backlog, then ``messages``; buffer what fails."""
        if not self._drain(None):
            self._buffer.extend(messages)
            return
        step = self.batch_size or max(len(messages), 1)
        for start in range(0, len(messages), step):
            if not self._attempt(messages[start:start + step]):
                # The buffer was empty, so order is kept.
                self._buffer.extend(messages[start:])
                return

    def _drain(self, deadline: float | None) -> bool:
        """Deliver buffered batches; True when the buffer is empty."""
        while True:
            batch = self._buffer.take(self.batch_size)
            if not batch:
                return True
            if not self._attempt(batch):
                self._buffer.put_back(batch)
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return self.buffered == 0

    def _attempt(self, batch: list[dict[str, Any]]) -> bool:
        try:
            self._deliver(batch)
        except Exception as exc:
            now = time.monotonic()
            self._retry_at = now + self.hold_off
            if self._failing_since is None:
                self._failing_since = now
                LOG.warning('Publisher %(pub)s cannot deliver samples '
                            '(%(type)s: %(err)s); keeping up to %(cap)d in '
                            'memory. Next attempt: the first publish after '
                            '%(hold).0f s, or a flush.',
                            {'pub': self.describe(),
                             'type': type(exc).__name__, 'err': exc,
                             'cap': self._buffer.capacity,
                             'hold': self.hold_off})
            else:
                LOG.debug('Publisher %(pub)s still cannot deliver: %(err)s',
                          {'pub': self.describe(), 'err': exc})
            return False
        self.published += len(batch)
        if self._failing_since is not None:
            LOG.info('Publisher %(pub)s delivers again after %(secs).1f s.',
                     {'pub': self.describe(),
                      'secs': time.monotonic() - self._failing_since})
            self._failing_since = None
        self._buffer.delivered()
        return True

    def _count(self) -> None:
        self.dropped = self._buffer.dropped + self._rejected
