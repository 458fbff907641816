"""Wire the plugins together and run sweeps: discovery, collectors, publishers.

:class:`Pipeline` is the library face of the poller.  ``qga-polling``
uses it for ``--once`` and for its periodic service, and tests use it
directly.  Publishing is off the sweep's path: each publisher has a
delivery thread fed by a bounded queue (:mod:`ceilometer_qga.publishers.
worker`), so a stuck or failing publisher never delays the sweeps nor
holds back the other publishers.
"""

from __future__ import annotations

import asyncio
import time

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga.discovery import load_discovery
from ceilometer_qga import observers as observers_mod
from ceilometer_qga import poller as poller_mod
from ceilometer_qga.publishers import load_publishers
from ceilometer_qga.publishers import worker as worker_mod

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
        #: sweep observers (:mod:`ceilometer_qga.observers`) the
        #: configuration enables: events, the Prometheus exporter
        self.observers = observers_mod.load_observers(conf)
        for observer in self.observers:
            observer.bind(self.poller)
        # Started by the first sweep, not here: qga-polling builds a
        # Pipeline to check the configuration before it forks, and threads
        # do not survive a fork.
        self._workers: list[worker_mod.PublishWorker] | None = None

    @property
    def workers(self) -> list[worker_mod.PublishWorker]:
        """One delivery thread per publisher (started on first use)."""
        if self._workers is None:
            self._workers = [
                worker_mod.PublishWorker(p, self.conf.qga_polling.buffer_size)
                for p in self.publishers]
        return self._workers

    async def run_once(self) -> poller_mod.SweepResult:
        """One sweep, its samples queued for every publisher.

        Returns when the sweep is done, not when the samples are delivered
        (:meth:`flush` waits for that).
        """
        start = time.monotonic()
        result = await self.poller.sweep()
        if result.messages:
            for worker in self.workers:
                worker.submit(result.messages)
        observers_mod.notify(self.observers, result)
        # With the poller's "Sweep:" line this says what signing and handing
        # the samples to the publishers' queues add; make bench reads both.
        LOG.info('Sweep published: %d samples to %d publisher(s) in %.3f s',
                 len(result.messages), len(self.workers),
                 time.monotonic() - start)
        return result

    async def flush(self, timeout: float) -> bool:
        """Deliver everything queued and buffered within ``timeout``.

        :returns: True when nothing is left undelivered
        """
        results = await asyncio.gather(
            *(asyncio.to_thread(w.flush, timeout) for w in self.workers),
            return_exceptions=True)
        return all(r is True for r in results)

    async def close(self) -> None:
        """Close guest sessions, publishers (flushing) and discovery."""
        await self.poller.close()
        observers_mod.close(self.observers)
        timeout = self.conf.qga_polling.shutdown_timeout
        for worker in self.workers:
            try:
                await asyncio.to_thread(worker.close, timeout)
            except Exception:
                LOG.exception('Closing publisher %s failed',
                              worker.publisher.describe())
        await asyncio.to_thread(self.discovery.close)
