"""Wire the plugins together and run sweeps: discovery, collectors, publishers.

:class:`Pipeline` is the library face of the poller.  ``qga-polling``
uses it for ``--once`` and for its periodic service, and tests use it
directly.  Publishing happens in worker threads (publishers may block on
the network) and a failing publisher never stops the others or the sweeps.
"""

from __future__ import annotations

import asyncio

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga.discovery import load_discovery
from ceilometer_qga import poller as poller_mod
from ceilometer_qga.publishers import load_publishers

LOG = logging.getLogger(__name__)


class Pipeline:
    """Discovery + poller + publishers, built from configuration.

    Construction validates the configuration: a bad value raises
    ``ValueError`` naming the option, before anything is contacted.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.discovery = load_discovery(conf)
        self.collectors = load_collectors(conf)
        self.publishers = load_publishers(conf)
        self.poller = poller_mod.Poller(conf, self.discovery, self.collectors)

    async def run_once(self) -> poller_mod.SweepResult:
        """One sweep, its samples handed to every publisher."""
        result = await self.poller.sweep()
        messages = result.messages
        if messages:
            await asyncio.gather(*(self._publish(p, messages)
                                   for p in self.publishers))
        return result

    async def _publish(self, publisher, messages: list[dict]) -> None:
        try:
            await asyncio.to_thread(publisher.publish, messages)
        except Exception:
            # The contract says publish() does not raise; if one does
            # anyway, the samples it lost are its own and polling goes on.
            LOG.exception('Publisher %s failed', publisher.describe())

    async def flush(self, timeout: float) -> bool:
        """Flush every publisher; True when nothing is left buffered."""
        results = await asyncio.gather(
            *(asyncio.to_thread(p.flush, timeout) for p in self.publishers),
            return_exceptions=True)
        return all(r is True for r in results)

    async def close(self) -> None:
        """Close guest sessions, publishers (flushing) and discovery."""
        await self.poller.close()
        for publisher in self.publishers:
            try:
                await asyncio.to_thread(publisher.close)
            except Exception:
                LOG.exception('Closing publisher %s failed',
                              publisher.describe())
        await asyncio.to_thread(self.discovery.close)
