"""The sweep engine: discovery → per-guest sessions → samples.

One sweep discovers the guests, keeps a :class:`~ceilometer_qga.session.
GuestSession` per guest (opened for new guests, closed for vanished ones),
and polls them concurrently, at most ``[qga_polling]
max_concurrent_guests`` at a time.  Commands to one guest stay serial.  Each
guest gets ``[qga_polling] guest_budget`` seconds per sweep; every command
``command_timeout``.  Whatever happens to one guest (hung agent, garbage,
paused domain, vanished domain, a bug in a collector) ends up as that
guest's ``guest.agent.up`` sample and never delays or breaks the others.

Guests created the old way, without any agent channel
(:meth:`~ceilometer_qga.guest.Guest.is_legacy`), are not contacted and get
no samples at all: they keep their injected monitoring, and an up=0 for
each would set off every alarm on ``guest.agent.up``.  They are logged once
when first seen and counted in every sweep's log line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import timeutils

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.discovery import base as discovery_base
from ceilometer_qga.guest import LEGACY
from ceilometer_qga.guest import LEGACY_REASON
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import selection
from ceilometer_qga import sample as sample_mod
from ceilometer_qga import sample_factory
from ceilometer_qga import session as session_mod

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class SweepResult:
    """What one sweep produced."""

    reports: list[session_mod.GuestReport]
    samples: list[sample_mod.Sample]
    duration: float

    @property
    def legacy(self) -> int:
        """How many guests had no agent channel (old-way guests)."""
        return sum(r.state == LEGACY for r in self.reports)


class Poller:
    """Runs sweeps; keeps per-guest sessions between them."""

    def __init__(self, conf: cfg.ConfigOpts,
                 discovery: discovery_base.Discovery,
                 collectors: list[collector_base.Collector],
                 transports: selection.TransportFactory | None = None
                 ) -> None:
        self.conf = conf
        self.discovery = discovery
        self.collectors = collectors
        self.transports = transports or selection.TransportFactory(conf)
        self.sessions: dict[str, session_mod.GuestSession] = {}
        self.meters = {m.name: m for m in sample_factory.LIVENESS_METERS}
        for collector in collectors:
            self.meters.update((m.name, m) for m in collector.meters)

    async def sweep(self) -> SweepResult:
        """Poll every discovered guest once and return the samples."""
        start = time.monotonic()
        try:
            guests = await asyncio.to_thread(self.discovery.discover)
        except Exception:
            # Discovery is the host's problem, not a guest's: log it and
            # try again next sweep with nothing published for this one.
            LOG.exception('Guest discovery failed; sweep skipped')
            return SweepResult([], [], time.monotonic() - start)
        await self._update_sessions(guests)
        limit = asyncio.Semaphore(self.conf.qga_polling.max_concurrent_guests)
        reports = await asyncio.gather(
            *(self._poll_guest(s, limit) for s in self.sessions.values()))
        timestamp = timeutils.utcnow().isoformat()
        monotonic_time = time.monotonic()
        samples = []
        for report in reports:
            if report.state == LEGACY:
                continue
            samples.extend(sample_factory.build_samples(
                report, self.meters, timestamp, monotonic_time))
        result = SweepResult(list(reports), samples,
                             time.monotonic() - start)
        # Legacy last: tools parsing the first part of the line keep working.
        LOG.info('Sweep: %d guests, %d up, %d samples in %.2f s, '
                 '%d legacy (no agent channel)', len(reports),
                 sum(r.up for r in reports), len(samples), result.duration,
                 result.legacy)
        return result

    async def close(self) -> None:
        """Close every session and the shared transport resources."""
        for session in self.sessions.values():
            await session.close()
        self.sessions.clear()
        self.transports.close()

    async def _update_sessions(self, guests: list) -> None:
        seen = set()
        for guest in guests:
            seen.add(guest.instance_id)
            session = self.sessions.get(guest.instance_id)
            if session is not None and session.guest == guest:
                # Same identity and channels: keep the connection, but take
                # the fresh metadata (power state!), which equality ignores.
                session.guest = guest
                continue
            if session is not None:
                # Channels or identity changed (restart, migration): start
                # over with a fresh transport.
                await session.close()
            transport, channel, reason = self.transports.make(guest)
            self.sessions[guest.instance_id] = session_mod.GuestSession(
                guest, transport, self.conf, reason, channel)
        for instance_id in list(self.sessions):
            if instance_id not in seen:
                await self.sessions.pop(instance_id).close()

    async def _poll_guest(self, session: session_mod.GuestSession,
                          limit: asyncio.Semaphore
                          ) -> session_mod.GuestReport:
        guest = session.guest
        report = session_mod.GuestReport(guest)
        skip = self._precheck(session)
        if skip is not None:
            report.state, report.error = skip
            if report.state == LEGACY:
                self._log_state(session, report)
            return report
        budget = self.conf.qga_polling.guest_budget
        async with limit:
            try:
                await asyncio.wait_for(
                    session.poll(self.collectors, report), budget)
            except asyncio.TimeoutError:
                report.state = 'over_budget'
                report.error = 'guest took longer than %.1f s' % budget
                if not report.up:
                    session.record_failure(errors.AgentTimeout(
                        guest.instance_id, None, report.error),
                        time.monotonic())
            except errors.QgaError as exc:
                report.state, report.error = exc.state, str(exc)
                if isinstance(exc, session_mod.GUEST_LEVEL_ERRORS):
                    session.record_failure(exc, time.monotonic())
            except Exception as exc:
                LOG.exception('Guest %s: unexpected error while polling',
                              guest.instance_id)
                report.state, report.error = 'error', repr(exc)[:500]
                session.record_failure(errors.QgaError(
                    guest.instance_id, None, report.error), time.monotonic())
            else:
                session.record_success()
        self._log_state(session, report)
        return report

    def _precheck(self, session: session_mod.GuestSession
                  ) -> tuple[str, str | None] | None:
        """Reasons not to contact the guest at all this sweep."""
        guest = session.guest
        if guest.is_legacy(self.conf.qga_polling.monitor_channel_name):
            return LEGACY, LEGACY_REASON
        state = guest.metadata.get('state')
        if state is not None and state != 'running':
            # A paused, suspended or crashed guest cannot answer; asking
            # would only burn the timeout (and libvirt refuses anyway).
            return state, 'domain is %s' % state
        if session.transport is None:
            return 'no_channel', session.no_transport_reason
        channel = session.channel
        if channel is not None and channel.state == 'disconnected':
            # libvirt says the guest never opened the port: a read would
            # only hang until the timeout, so do not even connect.
            return 'not_connected', ('channel %s is disconnected (the guest '
                                     'has not opened it)'
                                     % channel.target_name)
        if session.backed_off(time.monotonic()):
            last = session.last_error
            return 'backoff', ('backing off after %d failure(s); last: %s'
                               % (session.failures, last))
        return None

    @staticmethod
    def _log_state(session: session_mod.GuestSession,
                   report: session_mod.GuestReport) -> None:
        previous = session.logged_state
        if report.state == LEGACY and previous != LEGACY:
            LOG.info('Guest %s: no guest-agent channel: an old-way guest, '
                     'left to its own monitoring (no guest.agent.up)',
                     session.guest.instance_id)
        elif report.state != previous and not (
                previous is None and report.state == 'ok'):
            level = LOG.info if report.state == 'ok' else LOG.warning
            level('Guest %s: agent state %s -> %s%s',
                  session.guest.instance_id, previous or 'new', report.state,
                  (': %s' % report.error) if report.error else '')
        session.logged_state = report.state
