"""The sweep engine: discovery → per-guest sessions → samples.

One sweep discovers the guests, keeps a :class:`~ceilometer_qga.session.
GuestSession` per guest (opened for new guests, closed for vanished ones),
and runs their sweeps concurrently, at most ``[qga_polling]
max_concurrent_guests`` at a time.  Commands to one guest stay serial.  Each
guest gets ``[qga_polling] guest_budget`` seconds per sweep; every command
``command_timeout``.  The session decides what each guest's outcome means
(agent state, back-off, logging); the poller turns the reports into
samples.  Whatever happens to one guest (hung agent, garbage,
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
from collections.abc import Mapping
import dataclasses
import time
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import timeutils

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.collectors import checks
from ceilometer_qga.discovery import base as discovery_base
from ceilometer_qga.guest import LEGACY
from ceilometer_qga import meters as meters_mod
from ceilometer_qga.qga import selection
from ceilometer_qga.report import GuestReport
from ceilometer_qga import sample as sample_mod
from ceilometer_qga import sample_factory
from ceilometer_qga import schedule
from ceilometer_qga import session as session_mod
from ceilometer_qga import signature

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class SweepResult:
    """What one sweep produced."""

    reports: list[GuestReport]
    samples: list[sample_mod.Sample]
    duration: float
    #: the samples as signed wire dicts (``[publisher] telemetry_secret``)
    messages: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def legacy(self) -> int:
        """How many guests had no agent channel (old-way guests)."""
        return sum(r.state == LEGACY for r in self.reports)
    #: why discovery failed (the sweep then polled nobody), else None
    discovery_error: str | None = None


class Poller:
    """Runs sweeps; keeps per-guest sessions between them.

    :param intervals: outcome name -> least seconds between two runs of a
        collector on one guest (:mod:`ceilometer_qga.schedule`); None: the
        collectors' declared defaults and ``[qga_polling]
        collector_intervals``
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 discovery: discovery_base.Discovery,
                 collectors: list[collector_base.Collector],
                 transports: selection.TransportSelector | None = None,
                 intervals: Mapping[str, float] | None = None) -> None:
        self.conf = conf
        self.discovery = discovery
        self.collectors = collectors
        self.transports = transports or selection.TransportSelector(conf)
        self.sessions: dict[str, session_mod.GuestSession] = {}
        self.meters = meters_mod.catalogue(collectors)
        self.intervals = (schedule.intervals(conf, collectors)
                          if intervals is None else dict(intervals))

    async def sweep(self) -> SweepResult:
        """Poll every discovered guest once and return the samples."""
        start = time.monotonic()
        try:
            guests = await asyncio.to_thread(self.discovery.discover)
        except Exception as exc:
            # Discovery is the host's problem, not a guest's: log it and
            # try again next sweep with nothing published for this one.
            LOG.exception('Guest discovery failed; sweep skipped')
            return SweepResult([], [], time.monotonic() - start,
                               discovery_error=str(exc) or repr(exc))
        await self._update_sessions(guests)
        limit = asyncio.Semaphore(self.conf.qga_polling.max_concurrent_guests)
        budget = self.conf.qga_polling.guest_budget
        reports = await asyncio.gather(
            *(s.sweep(self.collectors, limit, budget)
              for s in self.sessions.values()))
        timestamp = timeutils.utcnow().isoformat()
        monotonic_time = time.monotonic()
        samples: list[sample_mod.Sample] = []
        messages: list[dict[str, Any]] = []
        for report in reports:
            if report.state == LEGACY:
                continue
            guest_samples, guest_messages = self._guest_output(
                report, timestamp, monotonic_time)
            samples.extend(guest_samples)
            messages.extend(guest_messages)
        result = SweepResult(list(reports), samples,
                             time.monotonic() - start, messages)
        # Legacy last: tools parsing the first part of the line keep working.
        LOG.info('Sweep: %d guests, %d up, %d samples in %.2f s, '
                 '%d legacy (no agent channel)', len(reports),
                 sum(r.up for r in reports), len(samples), result.duration,
                 result.legacy)
        return result

    def _guest_output(self, report: GuestReport, timestamp: str,
                      monotonic_time: float) -> tuple[
                          list[sample_mod.Sample], list[dict[str, Any]]]:
        """One guest's samples and signed messages, or only its liveness.

        Everything a guest sent has been checked by then, but building,
        signing and encoding are where a value that slipped through would
        raise; isolating each guest here means such a value costs its own
        guest's data for one sweep (reported as ``agent_state`` ``error``)
        and never the others'.
        """
        secret = self._secret()
        dropped: dict[str, list[str]] = {}
        session = self.sessions.get(report.guest.instance_id)
        try:
            instance_md = sample_factory.instance_metadata(report)
            samples = sample_factory.build_samples(
                report, self.meters, timestamp, monotonic_time, dropped,
                instance_md)
            # Every sample carries the instance's metadata: its text is
            # built once per guest for signing, not once per sample.
            shared = signature.SharedMetadata(instance_md) if secret else None
            messages = [sample_mod.to_message(s, secret, shared=shared)
                        for s in samples]
            for message in messages:
                sample_mod.encode(message)
            if session is not None:
                session.log_dropped(dropped)
            return samples, messages
        except Exception as exc:
            LOG.warning('Guest %s: its samples cannot be encoded (%s: %s); '
                        'only guest.agent.up is published this sweep',
                        report.guest.instance_id, type(exc).__name__,
                        checks.show(str(exc)))
            failed = GuestReport(report.guest, state='error',
                                 error='samples not encodable: %s'
                                 % type(exc).__name__,
                                 latency_ms=report.latency_ms)
            samples = sample_factory.build_samples(
                failed, self.meters, timestamp, monotonic_time)[:1]
            return samples, [sample_mod.to_message(s, secret)
                             for s in samples]

    def _secret(self) -> str | None:
        """``[publisher] telemetry_secret`` when registered (not in the
        pollsters, where Ceilometer signs)."""
        try:
            return self.conf.publisher.telemetry_secret
        except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
            return None

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
                guest, transport, self.conf, reason, channel, self.intervals)
        for instance_id in list(self.sessions):
            if instance_id not in seen:
                await self.sessions.pop(instance_id).close()
