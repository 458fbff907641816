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

"""Which collectors run on a guest in a sweep: each collector's interval.

Counters (cpu, disk, network) and the gauges that move all the time
(memory, load, users) are read in every sweep; what changes seldom --
filesystem sizes, online vCPUs -- every few minutes, as KubeVirt's agent
poller reads fsinfo every 300 s.  Each collector declares its default
(:attr:`~ceilometer_qga.collectors.base.Collector.interval`); ``[qga_polling]
collector_intervals`` overrides it by collector name (:func:`intervals`).

The rule, kept per guest session by :class:`CollectorSchedule`: a collector
runs in a sweep when

* it never gave readings on this session, or
* the transport reconnected since it did (the ``generation`` changed: a new
  or restarted agent, as for the capabilities), or
* ``now - last >= interval - tolerance``, the tolerance being half of
  ``[qga_polling] interval``: sweeps start a little late or early, and
  without it a 300 s collector in 60 s sweeps would run at 360 s.

``last`` is when the collector last completed with readings (native or
fallback); a collector that failed, was skipped or gave nothing is not
rescheduled, so it runs again in the next sweep.  A collector that is not
due gives no readings and an outcome whose source is :data:`NOT_DUE`: not
an error, not logged, no effect on ``agent_state``, and nothing is
repeated from an earlier sweep -- its meters are absent from that sweep.

There is no timer and no task: a comparison at sweep time, so an idle
guest costs nothing between sweeps.

Capabilities and OS facts (``guest-info``, ``guest-get-osinfo``,
``guest-get-host-name``) have a schedule of their own: every
``[qga_polling] capabilities_refresh`` seconds and after a reconnect
(:class:`~ceilometer_qga.session.GuestSession`).

Inside ``ceilometer-polling`` the pollsters build their poller with every
collector in every sweep (:data:`EVERY_SWEEP`): polling.yaml is the
operator's schedule there, one interval per source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import math

from oslo_config import cfg

from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga.report import CollectorOutcome

#: source of the outcome of a collector that was not due in a sweep
NOT_DUE = 'not_due'

#: sources of the outcomes that count as a run (with readings)
RAN = ('native', 'fallback')

#: intervals under which every collector runs in every sweep (the
#: Ceilometer pollsters': polling.yaml is their schedule)
EVERY_SWEEP: Mapping[str, float] = {}


def overrides(value: Mapping[str, str]) -> dict[str, float]:
    """``[qga_polling] collector_intervals`` as collector name -> seconds.

    :param value: the option's value (the names are not checked here)
    :raises ValueError: an item whose seconds are not a finite number
        >= 0; the message names the item and says why
    """
    seconds: dict[str, float] = {}
    for name, text in value.items():
        try:
            number = float(text)
        except ValueError:
            raise ValueError('%s:%s: not a number' % (name, text)) from None
        if not math.isfinite(number):
            raise ValueError('%s:%s: not a finite number' % (name, text))
        if number < 0:
            raise ValueError('%s:%s: negative' % (name, text))
        seconds[name] = number
    return seconds


def intervals(conf: cfg.ConfigOpts,
              collectors: Iterable[collector_base.Collector]
              ) -> dict[str, float]:
    """Collector name -> seconds: each collector's interval on this host.

    The override in ``[qga_polling] collector_intervals`` of the collector's
    name (its entry point's, as :func:`~ceilometer_qga.collectors.
    load_collectors` sets it), else what its class declares.

    :raises ValueError: see :func:`overrides` (:mod:`ceilometer_qga.
        conf_check` has refused such a value at start already)
    """
    wanted = overrides(conf.qga_polling.collector_intervals)
    return {c.name: wanted.get(c.name, type(c).interval) for c in collectors}


def tolerance(conf: cfg.ConfigOpts) -> float:
    """Half of ``[qga_polling] interval``: how early a collector may run."""
    return conf.qga_polling.interval / 2.0


class CollectorSchedule:
    """When each collector last gave readings on one guest; which are due.

    :param intervals: outcome name -> seconds (:func:`intervals`); a
        collector missing from it runs in every sweep
    :param tolerance: seconds a collector may run early (:func:`tolerance`)
    """

    def __init__(self, intervals: Mapping[str, float],
                 tolerance: float) -> None:
        self.intervals = dict(intervals)
        self.tolerance = tolerance
        #: outcome name -> (transport generation, monotonic time) of the
        #: last run that gave readings
        self._last: dict[str, tuple[int, float]] = {}

    def due(self, name: str, generation: int, now: float) -> bool:
        """Whether collector ``name`` runs in the sweep at ``now``.

        :param generation: the transport's connection count now
        :param now: ``time.monotonic()``
        """
        interval = self.intervals.get(name, 0)
        last = self._last.get(name)
        if interval <= 0 or last is None or last[0] != generation:
            return True
        return now - last[1] >= interval - self.tolerance

    def record(self, outcome: CollectorOutcome, generation: int,
               now: float) -> None:
        """Remember a run that gave readings; otherwise retry next sweep.

        :param outcome: what the collector produced in this sweep
        :param generation: the transport's connection count when it ran
        :param now: ``time.monotonic()`` when it completed
        """
        if outcome.source in RAN and outcome.result.readings:
            self._last[outcome.name] = (generation, now)
        else:
            self._last.pop(outcome.name, None)

    def not_due(self, name: str, now: float) -> CollectorOutcome:
        """The outcome of collector ``name``, not due at ``now``.

        Its reason says when it runs again (for ``qga-probe`` and logs at
        DEBUG); it is no error.
        """
        interval = self.intervals.get(name, 0)
        last = self._last[name][1]
        return CollectorOutcome(
            name, NOT_DUE, collector_base.ParseResult(),
            'not due: every %g s, due again in %.0f s'
            % (interval, max(last + interval - self.tolerance - now, 0)))
