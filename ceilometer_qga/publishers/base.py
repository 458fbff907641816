"""The publisher contract (entry points ``ceilometer_qga.publishers``).

A publisher is chosen by the scheme of a URL in ``[qga_polling]
publishers`` (``notifier://``, ``file:///var/lib/qga/samples.jsonl``), as in
Ceilometer's pipeline.  The poller hands it signed sample dicts (see
:func:`ceilometer_qga.sample.to_message`).

Contract:

* :meth:`publish` never raises because the destination is down: it keeps
  what it could not deliver in a buffer bounded by ``[qga_polling]
  buffer_size`` and retries on the next call or :meth:`flush`.  When the
  buffer is full the oldest samples are dropped, counted in
  :attr:`dropped` and logged.  A publisher failure never stops polling.
* :meth:`publish` may block (network, disk); the poller calls it from a
  worker thread, never from the event loop.
* :meth:`flush` tries to deliver everything buffered within ``timeout``
  seconds and says whether the buffer is empty afterwards.
* :meth:`close` flushes what it can and releases connections.
"""

from __future__ import annotations

import abc
from typing import Any
import urllib.parse

from oslo_config import cfg


def display_url(url: urllib.parse.SplitResult) -> str:
    """A publisher URL as the operator wrote it.

    ``SplitResult.geturl()`` drops the ``//`` of schemes it does not know
    (``notifier://?topic=x`` would read ``notifier:?topic=x``).
    """
    if url.netloc or not url.path or url.path.startswith('/'):
        text = f'{url.scheme}://{url.netloc}{url.path}'
    else:
        text = f'{url.scheme}:{url.path}'
    if url.query:
        text += '?' + url.query
    if url.fragment:
        text += '#' + url.fragment
    return text


class Publisher(abc.ABC):
    """Base class of every publisher."""

    def __init__(self, conf: cfg.ConfigOpts,
                 url: urllib.parse.SplitResult) -> None:
        self.conf = conf
        self.url = url
        #: samples dropped because the buffer was full, since start
        self.dropped = 0
        #: samples delivered, since start
        self.published = 0

    @abc.abstractmethod
    def publish(self, messages: list[dict[str, Any]]) -> None:
        """Deliver (or buffer) signed sample dicts."""

    @abc.abstractmethod
    def flush(self, timeout: float) -> bool:
        """Deliver buffered samples; True when nothing is left waiting."""

    def close(self) -> None:
        """Flush briefly and release resources."""
        self.flush(self.conf.qga_polling.shutdown_timeout)

    def describe(self) -> str:
        """Where the samples go, for logs and the demo."""
        return display_url(self.url)
