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
* Options a publisher has besides its URL's query are its ``CONFIG_OPTS``,
  registered by the loader in group ``[<scheme>_publisher]`` and handed to
  the constructor (os-vif's plugin contract, see
  :mod:`ceilometer_qga.plugins`); those of a URL are its query parameters.
"""

from __future__ import annotations

import abc
from typing import Any
import urllib.parse

from oslo_config import cfg

from ceilometer_qga import plugins


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


#: a publisher's option group is ``<scheme>_publisher``
GROUP_SUFFIX = 'publisher'


class Publisher(abc.ABC):
    """Base class of every publisher.

    :param conf: the poller's configuration (``[qga_polling]``)
    :param url: the publisher URL
    :param opts: this plugin's own group (its :attr:`CONFIG_OPTS`); None
        (a publisher built directly) registers it as the loader would
    """

    #: this plugin's own options, in group ``[<scheme>_publisher]``
    CONFIG_OPTS: list[cfg.Opt] = []

    def __init__(self, conf: cfg.ConfigOpts, url: urllib.parse.SplitResult,
                 opts: Any = None) -> None:
        self.conf = conf
        self.url = url
        if opts is None:
            opts = plugins.register(
                conf, plugins.group_name(url.scheme, GROUP_SUFFIX),
                self.CONFIG_OPTS)
        #: this plugin's group
        self.opts = opts
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
