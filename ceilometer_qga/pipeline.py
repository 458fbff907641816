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

"""Wire the plugins together and run sweeps: discovery, poller, publishers.

:class:`Pipeline` is the library face of the poller: it discovers the
guests, has the :class:`~ceilometer_qga.poller.Poller` sweep them, and is
the publishing side: it signs and encodes each guest's samples
(:func:`messages`) and queues them for the publishers.  ``qga-polling``
uses it for ``--once`` and for its periodic service, and tests use it
directly.  Publishing is off the sweep's path: each publisher has a
delivery thread fed by a bounded queue (:mod:`ceilometer_qga.publishers.
worker`), so a stuck or failing publisher never delays the sweeps nor
holds back the other publishers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga.discovery import load_discovery
from ceilometer_qga import observers as observers_mod
from ceilometer_qga import poller as poller_mod
from ceilometer_qga.publishers import load_publishers
from ceilometer_qga.publishers import worker as worker_mod
from ceilometer_qga import sample as sample_mod
from ceilometer_qga import signature

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
        self.poller = poller_mod.Poller(conf, self.collectors,
                                        discovery=self.discovery)
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
        try:
            guests = await asyncio.to_thread(self.discovery.discover)
        except Exception as exc:
            # Discovery is the host's problem, not a guest's: log it and
            # try again next sweep with nothing published for this one.
            LOG.exception('Guest discovery failed; sweep skipped')
            result = poller_mod.SweepResult(
                [], [], time.monotonic() - start,
                discovery_error=str(exc) or repr(exc))
            observers_mod.notify(self.observers, result)
            return result
        result = await self.poller.sweep(guests)
        wire = messages(self.poller, result, telemetry_secret(self.conf))
        if wire:
            for worker in self.workers:
                worker.submit(wire)
        observers_mod.notify(self.observers, result)
        # With the poller's "Sweep:" line this says what signing and handing
        # the samples to the publishers' queues add; make bench reads both.
        LOG.info('Sweep published: %d samples to %d publisher(s) in %.3f s',
                 len(wire), len(self.workers), time.monotonic() - start)
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


def telemetry_secret(conf: cfg.ConfigOpts) -> str | None:
    """``[publisher] telemetry_secret`` when registered (not in the
    pollsters, where Ceilometer signs).
    """
    try:
        return conf.publisher.telemetry_secret
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return None


def messages(poller: poller_mod.Poller, result: poller_mod.SweepResult,
             secret: str | None) -> list[dict[str, Any]]:
    """The sweep's samples as wire dicts, signed with ``secret``.

    Each guest's samples are signed and encoded together; a guest whose
    samples cannot be (a value that slipped through every check) is left
    with its liveness sample, ``agent_state`` ``error``
    (:meth:`~ceilometer_qga.poller.Poller.refuse`), and ``result.samples``
    says so too.  Without a secret nothing is signed: the pollsters call it
    so, for the encoding check alone, and Ceilometer signs.
    """
    out: list[dict[str, Any]] = []
    refused = False
    for report in result.reports:
        if not report.samples:
            continue
        try:
            out.extend(_guest_messages(report.samples,
                                       report.instance_metadata, secret))
        except Exception as exc:
            refused = True
            poller.refuse(report, 'samples not encodable', exc)
            out.extend(sample_mod.to_message(s, secret)
                       for s in report.samples)
    if refused:
        result.samples = [s for r in result.reports for s in r.samples]
    return out


def _guest_messages(samples: list[sample_mod.Sample],
                    instance_md: dict[str, Any],
                    secret: str | None) -> list[sample_mod.Message]:
    # Every sample carries the instance's metadata: its text is built once
    # per guest for signing, not once per sample.
    shared = signature.SharedMetadata(instance_md) if secret else None
    wire = [sample_mod.to_message(s, secret, shared=shared) for s in samples]
    for message in wire:
        sample_mod.encode(message)
    return wire
