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

"""Which agent-state changes are worth an event, and when to send them.

Every sweep gives each guest an ``agent_state`` (:class:`~ceilometer_qga.
report.GuestReport`).  An operator's alarm wants something else: one event
when a guest's agent stops answering, one when it answers again, and none
for everything in between.  :class:`LivenessTracker` turns the stream of
states into those changes.

Liveness, the trait an alarm matches on, is one of three words:

* ``up``: the agent answered ``guest-ping`` (whatever failed afterwards:
  a frozen guest, a collector's error, a sweep over budget);
* ``down``: the domain runs, it has an agent channel, and nobody answered
  (:data:`DOWN_STATES`);
* ``unknown``: nothing to judge -- the domain is paused, shutting down,
  suspended or migrating, the guest has no agent channel (``legacy``),
  or the filesystems are frozen by a Nova snapshot.  Never an alarm.

A ``backoff`` skip (the session waits after failures) is no observation:
the guest keeps its last state.

Damping, so that neither a flapping agent nor the poller itself makes a
storm:

* at most one event per guest per ``damping_interval`` seconds (a
  guest's first report, its state at start, does not count).  The first
  change is sent at once; changes inside the interval are merged, and when
  it has passed one event carries the state the guest is in then, with the
  state last *sent* as ``previous_state`` (a guest that went down and came
  back inside the interval sends nothing more);
* a guest that appears while the poller runs (booted, migrated here,
  resumed from elsewhere) is given ``startup_grace`` seconds before a
  ``down`` is believed: its agent starts after the kernel;
* the guests present at the poller's first sweep have their current state
  sent once; with ``state_file`` the states last sent survive a restart,
  and only what differs from them is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
import dataclasses
import json
import os
import tempfile
import time
from typing import Any

from oslo_log import log as logging

from ceilometer_qga.guest import STANDARD_CHANNEL

LOG = logging.getLogger(__name__)

UP = 'up'
DOWN = 'down'
UNKNOWN = 'unknown'

#: states in which a running domain's agent did not answer
DOWN_STATES = frozenset({'timeout', 'not_connected', 'protocol_error',
                         'over_budget', 'error', 'no_channel'})
#: states that say nothing about the agent: not an observation at all
NO_OBSERVATION = frozenset({'backoff'})
#: the agent answered (even if what followed failed)
UP_STATES = frozenset({'ok', 'unsupported', 'command_failed', 'forbidden'})
#: a guest seen for more than this without a report is forgotten
FORGET_AFTER = 3600.0


def liveness(state: str, answered: bool = False) -> str:
    """``up``, ``down`` or ``unknown`` for an ``agent_state``.

    :param answered: the agent answered ``guest-ping`` in that sweep
    """
    if answered or state in UP_STATES:
        return UP
    if state in DOWN_STATES:
        return DOWN
    # paused, shutdown, suspended, crashed, pending, frozen, legacy...
    return UNKNOWN


@dataclasses.dataclass
class Observation:
    """One guest's agent state as one sweep (or heartbeat) saw it."""

    instance_id: str
    state: str
    answered: bool = False
    reason: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    agent_version: str | None = None
    channel: str | None = None
    #: names the domain only (a libvirt event): identity to be filled in
    partial: bool = False

    @property
    def liveness(self) -> str:
        return liveness(self.state, self.answered)


@dataclasses.dataclass
class Change:
    """What one event says: a guest's state changed."""

    observation: Observation
    previous_state: str | None
    previous_liveness: str

    def payload(self, host: str) -> dict[str, Any]:
        """The notification payload (the traits of the event)."""
        obs = self.observation
        return {
            'instance_id': obs.instance_id,
            'project_id': obs.project_id,
            'user_id': obs.user_id,
            'host': host,
            'state': obs.state,
            'previous_state': self.previous_state or UNKNOWN,
            'liveness': obs.liveness,
            'previous_liveness': self.previous_liveness,
            'reason': obs.reason,
            'agent_version': obs.agent_version,
            'channel': obs.channel,
        }


def observation_from_report(report: Any,
                            monitor_channel: str) -> Observation:
    """An :class:`Observation` of a :class:`~ceilometer_qga.report.
    GuestReport`.

    The channel is the one the report's transport used; without one, the
    one the poller prefers for the guest: the dedicated monitor channel
    when the domain has it, else the standard one.
    """
    guest = report.guest
    if getattr(report, 'channel', None) is not None:
        channel: str | None = report.channel.target_name
    elif guest.channel(monitor_channel) is not None:
        channel = monitor_channel
    elif guest.channel(STANDARD_CHANNEL) is not None:
        channel = STANDARD_CHANNEL
    else:
        channel = None
    return Observation(
        instance_id=guest.instance_id, state=report.state,
        answered=report.up, reason=report.error,
        project_id=guest.project_id, user_id=guest.user_id,
        agent_version=report.facts.get('agent_version'), channel=channel)


@dataclasses.dataclass
class _Guest:
    sent_state: str | None       # last state sent (None: never)
    sent_liveness: str
    sent_at: float               # monotonic time of that event
    first_seen: float
    last_seen: float
    #: seen at the poller's first sweep (no start-up grace)
    initial: bool
    pending: Observation | None = None


class LivenessTracker:
    """Turns observations into :class:`Change` events (module docstring).

    :param known: instance id -> state last sent, from ``state_file``
    :param clock: monotonic seconds (tests give their own)
    """

    def __init__(self, damping_interval: float, startup_grace: float,
                 known: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.damping_interval = damping_interval
        self.startup_grace = startup_grace
        self.clock = clock
        self._known = dict(known or {})
        self._guests: dict[str, _Guest] = {}
        self._first_round = True

    def observe(self, observations: Iterable[Observation]) -> list[Change]:
        """Take one round of observations; the changes to send now.

        The first call is the poller's first sweep: guests in it count as
        present at start (no grace).  A guest absent from a round is kept
        (the Ceilometer pollsters sweep subsets); it is forgotten after
        :data:`FORGET_AFTER` seconds unseen.
        """
        now = self.clock()
        initial = self._first_round
        self._first_round = False
        changes = []
        for obs in observations:
            change = self._observe_one(obs, now, initial)
            if change is not None:
                changes.append(change)
        changes.extend(self._due(now, skip={c.observation.instance_id
                                            for c in changes}))
        for instance_id in [i for i, g in self._guests.items()
                            if now - g.last_seen > FORGET_AFTER]:
            del self._guests[instance_id]
        return changes

    def _observe_one(self, obs: Observation, now: float,
                     initial: bool) -> Change | None:
        if obs.state in NO_OBSERVATION:
            guest = self._guests.get(obs.instance_id)
            if guest is not None:
                guest.last_seen = now
            return None
        guest = self._guests.get(obs.instance_id)
        if guest is None:
            sent = self._known.pop(obs.instance_id, None)
            guest = _Guest(sent, liveness(sent) if sent else UNKNOWN,
                           -float('inf'), now, now, initial)
            self._guests[obs.instance_id] = guest
        guest.last_seen = now
        if (obs.liveness == DOWN and not guest.initial
                and now - guest.first_seen < self.startup_grace):
            # A new guest's agent may not have started yet.
            return None
        if obs.state == guest.sent_state:
            guest.pending = None
            return None
        if now - guest.sent_at < self.damping_interval:
            guest.pending = obs
            return None
        return self._send(guest, obs, now)

    def _due(self, now: float, skip: set[str]) -> list[Change]:
        changes = []
        for instance_id, guest in self._guests.items():
            if (guest.pending is not None and instance_id not in skip
                    and now - guest.sent_at >= self.damping_interval):
                changes.append(self._send(guest, guest.pending, now))
        return changes

    def _send(self, guest: _Guest, obs: Observation, now: float) -> Change:
        change = Change(obs, guest.sent_state, guest.sent_liveness)
        if guest.sent_state is not None:
            # A guest's first report says where it is, not that it moved:
            # it opens no damping interval.
            guest.sent_at = now
        guest.sent_state = obs.state
        guest.sent_liveness = obs.liveness
        guest.pending = None
        return change

    def sent_states(self) -> dict[str, str]:
        """Instance id -> state last sent (what ``state_file`` keeps)."""
        states = dict(self._known)
        states.update({i: g.sent_state for i, g in self._guests.items()
                       if g.sent_state is not None})
        return states


def load_states(path: str | None) -> dict[str, str]:
    """The states a previous run sent; empty when there is no usable file.

    The file is ours, but a damaged one must not stop the poller: it only
    costs one event per guest, as a first start does.
    """
    if not path:
        return {}
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        LOG.warning('Agent state file %s unusable (%s); every guest\'s '
                    'state is sent once', path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(k, str) and isinstance(v, str)}


def save_states(path: str | None, states: dict[str, str]) -> None:
    """Write ``states`` to ``path`` atomically (rename)."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.agent-states.')
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            json.dump(states, handle)
        os.replace(tmp, path)
    except OSError as exc:
        LOG.warning('Cannot write the agent state file %s: %s', path, exc)
