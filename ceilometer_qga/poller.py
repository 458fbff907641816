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

"""The sweep: the given guests -> per-guest sessions -> reports and samples.

:meth:`Poller.sweep` takes the guests to poll (discovery is the caller's:
:class:`~ceilometer_qga.pipeline.Pipeline`, Ceilometer's resources in the
pollsters, ``qga-probe``'s command line), keeps a :class:`~ceilometer_qga.
session.GuestSession` per guest (opened for new guests, closed for the
ones no longer given), and runs their sweeps concurrently, at most
``[qga_polling] max_concurrent_guests`` at a time.  Commands to one guest
stay serial.  Each guest gets ``[qga_polling] guest_budget`` seconds per
sweep; every command ``command_timeout``.  The session decides what each
guest's outcome means (agent state, back-off, logging); the poller turns
each report into its samples, unsigned: signing and encoding are the
publishing side's (:mod:`ceilometer_qga.pipeline`; inside
``ceilometer-polling``, Ceilometer's).

Between sweeps, :meth:`Poller.guest_changed` brings one guest's session up
to date when an event says its domain changed (libvirt's lifecycle
events: started, stopped, paused, resumed, migrated; the agent opening or
closing its channel): the session is opened, its guest's power state and
channels refreshed, or it is closed, without waiting for the next
discovery, so that the heartbeat asks a guest that just started and
stops asking one that stopped or was paused.  Whatever happens to one guest (hung
agent, garbage, paused domain, vanished domain, a bug in a collector) ends
up as that guest's ``guest.agent.up`` sample and never delays or breaks the
others.

Guests created the old way, without any agent channel
(:meth:`~ceilometer_qga.guest.Guest.is_legacy`), are not contacted and get
no samples at all: they keep their injected monitoring, and an up=0 for
each would set off every alarm on ``guest.agent.up``.  They are logged once
when first seen and counted in every sweep's log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
import dataclasses
import time

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import timeutils

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.discovery import base as discovery_base
from ceilometer_qga.guest import Guest
from ceilometer_qga.guest import LEGACY
from ceilometer_qga import meters as meters_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import selection
from ceilometer_qga.report import GuestReport
from ceilometer_qga import sample as sample_mod
from ceilometer_qga import sample_factory
from ceilometer_qga import schedule
from ceilometer_qga import session as session_mod
from ceilometer_qga import untrusted

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class SweepResult:
    """What one sweep produced."""

    reports: list[GuestReport]
    #: every guest's samples (each report's ``samples``), unsigned
    samples: list[sample_mod.Sample]
    duration: float

    @property
    def legacy(self) -> int:
        """How many guests had no agent channel (old-way guests)."""
        return sum(r.state == LEGACY for r in self.reports)
    #: why discovery failed (the sweep then polled nobody), else None
    discovery_error: str | None = None


class Poller:
    """Runs sweeps; keeps per-guest sessions between them.

    :param intervals: collector name -> least seconds between two runs of
        a collector on one guest (:mod:`ceilometer_qga.schedule`); None:
        the collectors' declared defaults and ``[qga_polling]
        collector_intervals``
    :param discovery: what :meth:`guest_changed` asks about one guest;
        None: events change no session (the next sweep does)
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 collectors: list[collector_base.Collector],
                 transports: selection.TransportSelector | None = None,
                 intervals: Mapping[str, float] | None = None,
                 discovery: discovery_base.Discovery | None = None) -> None:
        self.conf = conf
        self.collectors = collectors
        self.transports = transports or selection.TransportSelector(conf)
        self.sessions: dict[str, session_mod.GuestSession] = {}
        self.meters = meters_mod.catalogue(collectors)
        self.intervals = (schedule.intervals(conf, collectors)
                          if intervals is None else dict(intervals))
        self.discovery = discovery
        #: sessions change in the order their causes came: a sweep's
        #: discovery, then each event's look-up (FIFO lock)
        self._sessions_lock = asyncio.Lock()
        self._closed = False

    async def sweep(self, guests: Iterable[Guest]) -> SweepResult:
        """Poll each of ``guests`` once; sessions of others are closed."""
        start = time.monotonic()
        async with self._sessions_lock:
            await self._update_sessions(guests)
        limit = asyncio.Semaphore(self.conf.qga_polling.max_concurrent_guests)
        budget = self.conf.qga_polling.guest_budget
        reports = await asyncio.gather(
            *(s.sweep(self.collectors, limit, budget)
              for s in self.sessions.values()))
        timestamp = timeutils.utcnow().isoformat()
        monotonic_time = time.monotonic()
        samples: list[sample_mod.Sample] = []
        for report in reports:
            if report.state != LEGACY:
                self._build(report, timestamp, monotonic_time)
                samples.extend(report.samples)
        result = SweepResult(list(reports), samples, time.monotonic() - start)
        # Legacy last: tools parsing the first part of the line keep working.
        LOG.info('Sweep: %d guests, %d up, %d samples in %.2f s, '
                 '%d legacy (no agent channel)', len(reports),
                 sum(r.up for r in reports), len(samples), result.duration,
                 result.legacy)
        return result

    def _build(self, report: GuestReport, timestamp: str,
               monotonic_time: float) -> None:
        """Fill the report's samples, or only its liveness.

        Everything a guest sent has been checked by then, but building is
        where a value that slipped through would raise; isolating each
        guest here means such a value costs its own guest's data for one
        sweep (reported as ``agent_state`` ``error``) and never the
        others'.
        """
        dropped: dict[str, list[str]] = {}
        try:
            report.instance_metadata = sample_factory.instance_metadata(report)
            report.samples = sample_factory.build_samples(
                report, self.meters, timestamp, monotonic_time, dropped,
                report.instance_metadata)
        except Exception as exc:
            report.samples = []
            self.refuse(report, 'samples not buildable', exc,
                        timestamp, monotonic_time)
            return
        session = self.sessions.get(report.guest.instance_id)
        if session is not None:
            session.log_dropped(dropped)

    def refuse(self, report: GuestReport, why: str, exc: Exception,
               timestamp: str | None = None,
               monotonic_time: float | None = None) -> None:
        """Replace the guest's samples by its liveness, state ``error``.

        The publishing side calls it too, for a guest whose samples cannot
        be signed or encoded.
        """
        LOG.warning('Guest %s: %s (%s: %s); only guest.agent.up is '
                    'published this sweep', report.guest.instance_id, why,
                    type(exc).__name__, untrusted.show(str(exc)))
        failed = GuestReport(report.guest, state='error',
                             error='%s: %s' % (why, type(exc).__name__),
                             latency_ms=report.latency_ms)
        if report.samples:  # the sweep's time, as the others' samples
            timestamp = report.samples[0].timestamp
            monotonic_time = report.samples[0].monotonic_time
        report.instance_metadata = sample_factory.instance_metadata(failed)
        report.samples = sample_factory.build_samples(
            failed, self.meters, timestamp or timeutils.utcnow().isoformat(),
            monotonic_time or time.monotonic(),
            instance_md=report.instance_metadata)[:1]

    async def ping(self, instance_id: str) -> float:
        """One ``guest-ping`` to a guest of the last sweep; milliseconds.

        :raises KeyError: no such guest in the last sweep
        :raises errors.QgaError: the guest has no transport
            (:class:`~ceilometer_qga.qga.errors.AgentNotConnected`) or did
            not answer
        """
        session = self.sessions[instance_id]
        if session.transport is None:
            raise errors.AgentNotConnected(instance_id, 'guest-ping',
                                           session.no_transport_reason)
        start = time.monotonic()
        await session.transport.execute('guest-ping')
        return (time.monotonic() - start) * 1000

    async def close(self) -> None:
        """Close every session and the shared transport resources."""
        self._closed = True
        for session in self.sessions.values():
            await session.close()
        self.sessions.clear()
        self.transports.close()

    async def guest_changed(self, instance_id: str) -> None:
        """Bring one guest's session up to date (see the module).

        Asks the discovery about that guest alone, then opens, updates or
        closes its session as a sweep would.  A discovery failure leaves
        the session as it is: the next sweep decides.
        """
        if self.discovery is None:
            return
        async with self._sessions_lock:
            if self._closed:
                return  # an event that came while the poller stopped
            try:
                guest = await asyncio.to_thread(self.discovery.discover_one,
                                                instance_id)
            except Exception as exc:
                LOG.warning('Guest %s changed, but cannot be looked up (%s); '
                            'its session waits for the next sweep',
                            instance_id, exc)
                return
            had = instance_id in self.sessions
            if guest is None:
                if had:
                    await self.sessions.pop(instance_id).close()
                    LOG.info('Guest %s: domain gone or stopped; session '
                             'closed', instance_id)
                return
            await self._put_session(guest)
            if not had:
                LOG.info('Guest %s: domain started or arrived; session '
                         'opened', instance_id)

    async def _put_session(self, guest: Guest) -> None:
        """Open a session for ``guest`` or bring its session up to date."""
        session = self.sessions.get(guest.instance_id)
        if session is not None and session.guest == guest:
            # Same identity and channels: keep the connection, but take
            # the fresh metadata (power state!), which equality ignores.
            session.guest = guest
            return
        if session is not None:
            # Channels or identity changed (restart, migration): start
            # over with a fresh transport.
            await session.close()
        transport, channel, reason = self.transports.make(guest)
        self.sessions[guest.instance_id] = session_mod.GuestSession(
            guest, transport, self.conf, reason, channel, self.intervals)

    async def _update_sessions(self, guests: Iterable[Guest]) -> None:
        seen = set()
        for guest in guests:
            seen.add(guest.instance_id)
            await self._put_session(guest)
        for instance_id in list(self.sessions):
            if instance_id not in seen:
                await self.sessions.pop(instance_id).close()
