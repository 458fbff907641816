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

"""One guest, across sweeps: its transport, capabilities, facts, back-off.

A :class:`GuestSession` lives as long as its guest is discovered and owns
that guest's part of every sweep (:meth:`GuestSession.sweep`):

1. the pre-check: a guest created the old way without any agent channel
   (:meth:`~ceilometer_qga.guest.Guest.is_legacy`), a domain that is not
   running, a guest without a usable channel, a channel the guest has not
   opened, a guest in back-off -- none of them is contacted;
2. the poll, within the budget the poller gives: ``guest-ping``,
   ``guest-info`` when the cached copy is old or the agent reconnected, the
   OS facts, then one batch of every command that depends on no other
   reply (the freeze status, the due collectors' native commands and
   ``/proc`` opens: :mod:`ceilometer_qga.prefetch`), then each collector
   that is due (:mod:`ceilometer_qga.schedule`) through the one decision
   the engine owns (:mod:`ceilometer_qga.engine`), planned once per sweep: native
   command if the guest offers it, else the declared ``/proc`` fallback if
   file reads are enabled and the guest can do it, else skip with a
   reason -- taking the batch's results where it has them;
3. the mapping of what went wrong onto the guest's ``agent_state``, the
   back-off after a guest-level failure, and one log line per state change.

It returns a :class:`~ceilometer_qga.report.GuestReport`.  One call on the
transport at a time (it serialises them); a batch is one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import math
import time
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga import engine
from ceilometer_qga import freeze
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.guest import LEGACY
from ceilometer_qga.guest import LEGACY_REASON
from ceilometer_qga import prefetch as prefetch_mod
from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import os_facts
from ceilometer_qga.qga import transport as transport_mod
from ceilometer_qga.report import CollectorOutcome
from ceilometer_qga.report import GuestReport
from ceilometer_qga import schedule as schedule_mod

LOG = logging.getLogger(__name__)


class GuestSession:
    """Per-guest state kept between sweeps, and the guest's sweep."""

    def __init__(self, guest: Guest,
                 transport: transport_mod.Transport | None,
                 conf: cfg.ConfigOpts, no_transport_reason: str = '',
                 channel: Channel | None = None,
                 intervals: Mapping[str, float] = schedule_mod.EVERY_SWEEP
                 ) -> None:
        self.guest = guest
        self.transport = transport
        #: the channel the transport uses (its libvirt state is checked)
        self.channel = channel
        #: agent state last logged, so that changes are logged once; None
        #: until the first sweep
        self.logged_state: str | None = None
        self.conf = conf
        self.no_transport_reason = no_transport_reason
        self.capabilities: caps_mod.Capabilities | None = None
        self.facts: dict[str, Any] = {}
        self._caps_generation = -1
        self._caps_time = 0.0
        self.failures = 0
        self.next_attempt = 0.0
        self.last_error: errors.QgaError | None = None
        #: the collectors whose drops were last logged: the incident
        self._drop_incident: frozenset[str] = frozenset()
        self.schedule = schedule_mod.CollectorSchedule(
            intervals, schedule_mod.tolerance(conf))
        #: collectors not due in the last sweep: their drops are unknown
        self._not_due: frozenset[str] = frozenset()

    # -- the guest's sweep -------------------------------------------------

    async def sweep(self, collectors: list[collector_base.Collector],
                    limit: asyncio.Semaphore, budget: float) -> GuestReport:
        """This guest's part of one sweep; never raises for the guest.

        :param collectors: what to run
        :param limit: held while the guest is contacted (the poller's bound
            on guests in flight); not taken when the pre-check skips it
        :param budget: seconds the guest may take in all
        """
        report = GuestReport(
            self.guest, channel=self.channel,
            transport_kind=self.transport.kind if self.transport else None,
            transport_reason=self.no_transport_reason or None,
            capabilities=self.capabilities)
        self._not_due = frozenset()
        skip = self._precheck()
        if skip is not None:
            report.state, report.error = skip
            # A skip is not logged (its agent state is in the sample),
            # except the first sighting of an old-way guest, which gets
            # no sample at all.
            if report.state == LEGACY:
                self._log_state(report)
            return report
        async with limit:
            await self._poll_within(collectors, report, budget)
        self._not_due = frozenset(o.name for o in report.outcomes
                                  if o.source == schedule_mod.NOT_DUE)
        report.capabilities = self.capabilities
        self._log_state(report)
        return report

    async def _poll_within(self, collectors: list[collector_base.Collector],
                           report: GuestReport, budget: float) -> None:
        try:
            await asyncio.wait_for(self.poll(collectors, report), budget)
        except asyncio.TimeoutError:
            report.state = 'over_budget'
            report.error = 'guest took longer than %.1f s' % budget
            if not report.up:
                self._record_failure(errors.AgentTimeout(
                    self.guest.instance_id, None, report.error))
        except errors.QgaError as exc:
            report.state, report.error = exc.state, str(exc)
            if isinstance(exc, errors.UNREACHABLE):
                self._record_failure(exc)
        except Exception as exc:
            LOG.exception('Guest %s: unexpected error while polling',
                          self.guest.instance_id)
            report.state, report.error = 'error', repr(exc)[:500]
            self._record_failure(errors.QgaError(
                self.guest.instance_id, None, report.error))
        else:
            self._record_success()

    def _precheck(self) -> tuple[str, str | None] | None:
        """Reasons not to contact the guest at all this sweep."""
        if self.guest.is_legacy(self.conf.qga_polling.monitor_channel_name):
            return LEGACY, LEGACY_REASON
        state = self.guest.metadata.get('state')
        if state is not None and state != 'running':
            # A paused, suspended or crashed guest cannot answer; asking
            # would only burn the timeout (and libvirt refuses anyway).
            return state, 'domain is %s' % state
        if self.transport is None:
            return 'no_channel', self.no_transport_reason
        channel = self.channel
        if channel is not None and channel.state == 'disconnected':
            # libvirt says the guest never opened the port: a read would
            # only hang until the timeout, so do not even connect.
            return 'not_connected', ('channel %s is disconnected (the guest '
                                     'has not opened it)'
                                     % channel.target_name)
        if time.monotonic() < self.next_attempt:
            return 'backoff', ('backing off after %d failure(s); last: %s'
                               % (self.failures, self.last_error))
        return None

    def _log_state(self, report: GuestReport) -> None:
        previous = self.logged_state
        if report.state == LEGACY and previous != LEGACY:
            LOG.info('Guest %s: no guest-agent channel: an old-way guest, '
                     'left to its own monitoring (no guest.agent.up)',
                     self.guest.instance_id)
        elif report.state != previous and not (
                previous is None and report.state == 'ok'):
            level = LOG.info if report.state == 'ok' else LOG.warning
            level('Guest %s: agent state %s -> %s%s',
                  self.guest.instance_id, previous or 'new', report.state,
                  (': %s' % report.error) if report.error else '')
        self.logged_state = report.state

    def log_dropped(self, dropped: dict[str, list[str]]) -> None:
        """Log values left out, once per incident, not once per value.

        An incident is the set of collectors that drop values: one WARNING
        (with counts and the first reason of each) when it starts or
        changes, one INFO when it ends, DEBUG in between -- a hostile guest
        sending 10,000 bad items every sweep costs one line, not 10,000 a
        sweep.

        :param dropped: collector name -> reasons, for this sweep
        """
        # A collector that did not run keeps its place in the incident:
        # otherwise every rest would end the incident and the next run
        # would warn again.
        incident = frozenset(dropped) | (self._drop_incident & self._not_due)
        if incident == self._drop_incident:
            if dropped:
                LOG.debug('Guest %s: still dropping values: %s',
                          self.guest.instance_id, _drop_summary(dropped))
            return
        if dropped:
            LOG.warning('Guest %s: values dropped as invalid: %s. Logged '
                        'again only when this changes.',
                        self.guest.instance_id, _drop_summary(dropped))
        else:
            LOG.info('Guest %s: no more invalid values',
                     self.guest.instance_id)
        self._drop_incident = incident

    # -- back-off ----------------------------------------------------------

    def _record_failure(self, error: errors.QgaError) -> None:
        """Push the next attempt out: initial * 2**(failures-1), capped."""
        self.failures += 1
        self.last_error = error
        opts = self.conf.qga_polling
        delay = min(opts.backoff_initial * 2 ** min(self.failures - 1, 30),
                    opts.backoff_max)
        self.next_attempt = time.monotonic() + delay

    def _record_success(self) -> None:
        """Forget past failures."""
        self.failures = 0
        self.next_attempt = 0.0
        self.last_error = None

    # -- talking to the agent ----------------------------------------------

    async def poll(self, collectors: list[collector_base.Collector],
                   report: GuestReport) -> None:
        """Ping, refresh capabilities, run the collectors into ``report``.

        ``report`` is filled in place so that what was gathered survives the
        budget cancelling this coroutine (:meth:`sweep` calls it).

        :raises errors.QgaError: one of :data:`~ceilometer_qga.qga.errors.UNREACHABLE` when the
            guest cannot be reached; other errors are per collector and end
            up in the report.
        """
        assert self.transport is not None
        self.transport.new_sweep()
        start = time.monotonic()
        await self.transport.execute('guest-ping')
        report.latency_ms = (time.monotonic() - start) * 1000.0
        # guest-info is answered while frozen too (the agent's version and
        # facts stay known), but what it says then is not kept past the
        # sweep (:mod:`ceilometer_qga.freeze`).
        await self._refresh_capabilities()
        assert self.capabilities is not None
        # Decided once per sweep: the batch asks for what these need, and
        # exactly these run.
        now = time.monotonic()
        due = [c for c in collectors
               if self.schedule.due(c.name, self.transport.generation, now)]
        plans = {p.collector.name: p for p in engine.plan(
            due, self.capabilities, self.facts, self.conf)}
        batch = await prefetch_mod.prefetch(self.transport, self.capabilities,
                                            list(plans.values()))
        frozen, reread = freeze.judge(batch.freeze_status, self.capabilities)
        if reread:
            self._caps_time = -math.inf
        report.facts = dict(self.facts)
        if frozen:
            # Alive, but the batch's data commands were refused.
            report.state = freeze.STATE
            report.error = ('guest filesystems are frozen '
                            '(guest-fsfreeze-status)')
            report.outcomes = freeze.skipped(collectors)
            return
        for collector in collectors:
            step = plans.get(collector.name)
            if step is not None:
                report.outcomes.append(await self._run(step, batch))
            else:
                report.outcomes.append(self.schedule.not_due(
                    collector.name, now))
        if freeze.began_meanwhile(report.outcomes):
            # Alive but quiesced (a Nova snapshot) since the status was
            # read: say so, it is not dead; re-read capabilities after.
            report.state = freeze.STATE
            self._caps_time = -math.inf

    async def _refresh_capabilities(self) -> None:
        assert self.transport is not None
        max_age = self.conf.qga_polling.capabilities_refresh
        if (self.capabilities is not None
                and self._caps_generation == self.transport.generation
                and time.monotonic() - self._caps_time < max_age):
            return
        self.capabilities = caps_mod.parse_guest_info(
            await self.transport.execute('guest-info'))
        self._caps_generation = self.transport.generation
        self._caps_time = time.monotonic()
        self.facts = await os_facts.read(self.transport, self.capabilities)

    async def _run(self, step: engine.Plan,
                   batch: prefetch_mod.Prefetched) -> CollectorOutcome:
        """Run a due collector through the engine; record the run."""
        assert self.transport is not None
        outcome = await engine.run(step, batch.execute, batch.read_file)
        self.schedule.record(outcome, self.transport.generation,
                             time.monotonic())
        return outcome

    async def close(self) -> None:
        """Close the transport (the guest went away or we stop)."""
        if self.transport is not None:
            await self.transport.close()


def _drop_summary(dropped: dict[str, list[str]]) -> str:
    """``Name: N (first: reason); ...``, bounded whatever the guest sent."""
    return '; '.join('%s: %d (first: %s)' % (name, len(reasons),
                                             reasons[0][:200])
                     for name, reasons in sorted(dropped.items()))
