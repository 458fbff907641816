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

"""The heartbeat: ``guest-ping`` to every guest, apart from the metrics.

A sweep runs every ``[qga_polling] interval`` (300 s by default) and asks
each guest a dozen commands; an alarm wants to know within seconds that an
agent stopped answering.  The heartbeat asks only ``guest-ping`` (the
cheapest command there is: no reply but ``{}``), every ``[qga_polling]
heartbeat_interval`` seconds, over the sessions' own transports -- the
same connections the sweeps use, so no second client ever talks to a
single-client agent.

Which guests: those a sweep would contact now (the session's pre-check:
not legacy, domain running, a channel the guest has opened, not backing
off after failures -- those states come from the sweeps themselves).  A
guest whose transport is busy (a sweep is talking to it) is left out of
that beat: the sweep's own outcome reports it, and a ping queued behind a
long batch would time out for no fault of the agent.

Each beat gives one :class:`~ceilometer_qga.liveness.Observation` per
guest asked, for :class:`~ceilometer_qga.liveness.LivenessTracker`: a
killed or hung agent is seen within ``heartbeat_interval`` +
``command_timeout``.  ``guest.agent.up`` stays one sample per sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
import time

from oslo_log import log as logging

from ceilometer_qga import liveness as liveness_mod
from ceilometer_qga.qga import errors

LOG = logging.getLogger(__name__)

#: pings in flight at once at most (each is one small write and read; a
#: hung guest holds its slot for command_timeout)
CONCURRENCY = 256


async def ping(session, timeout: float) -> liveness_mod.Observation:
    """Ping one session's agent; its observation."""
    guest = session.guest
    channel = session.channel.target_name if session.channel else None
    version = session.facts.get('agent_version')
    try:
        await session.transport.execute('guest-ping', timeout=timeout)
    except errors.QgaError as exc:
        state, answered, reason = exc.state, False, str(exc)
        if not isinstance(exc, errors.UNREACHABLE):
            # The agent answered, with an error (frozen, disabled...).
            answered = True
    else:
        state, answered, reason = 'ok', True, None
    return liveness_mod.Observation(
        instance_id=guest.instance_id, state=state, answered=answered,
        reason=reason, project_id=guest.project_id, user_id=guest.user_id,
        agent_version=version, channel=channel)


def due(sessions: Iterable) -> list:
    """The sessions a beat asks (module docstring)."""
    chosen = []
    for session in sessions:
        if session.transport is None or session._precheck() is not None:
            continue
        if session.transport._lock.locked():
            continue
        chosen.append(session)
    return chosen


async def beat(sessions: Iterable,
               timeout: float) -> list[liveness_mod.Observation]:
    """One heartbeat over ``sessions``; the observations."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(session):
        async with limit:
            return await ping(session, timeout)

    return list(await asyncio.gather(*(one(s) for s in due(sessions))))


class Heartbeat:
    """Beats every ``interval`` seconds until stopped.

    :param sessions: the poller's sessions now (called at every beat)
    :param observe: takes each beat's observations (the events observer)
    """

    def __init__(self, interval: float, timeout: float,
                 sessions: Callable[[], Iterable],
                 observe: Callable[[list[liveness_mod.Observation]], None]
                 ) -> None:
        self.interval = interval
        self.timeout = timeout
        self.sessions = sessions
        self.observe = observe
        self.task: asyncio.Task | None = None
        #: beats done, for logs and tests
        self.beats = 0

    def start(self) -> None:
        """Start beating on the running loop."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while True:
            next_beat += self.interval
            started = time.process_time()
            asked = 0
            try:
                observations = await beat(list(self.sessions()),
                                          self.timeout)
                asked = len(observations)
                self.observe(observations)
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.exception('Heartbeat failed')
            self.beats += 1
            LOG.debug('Heartbeat: %d guest(s) asked, %.1f ms CPU', asked,
                      (time.process_time() - started) * 1000)
            # Never two beats at once, and no catching up after a slow one.
            next_beat = max(next_beat, loop.time())
            await asyncio.sleep(next_beat - loop.time())

    def stop(self) -> None:
        """Cancel the beating task (on its loop)."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
