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

"""libvirt's own events about the guests' agents, as they happen.

libvirt emits ``VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE`` when the guest opens
or closes the standard agent channel (``org.qemu.guest_agent.0``: the
agent started, or was stopped or killed) and ``VIR_DOMAIN_EVENT_ID_
LIFECYCLE`` when the domain is paused, resumed, shut down, stopped or
migrated.  :class:`LibvirtEvents` listens for both on a read-only
connection of its own, with libvirt's default event loop
(``virEventRegisterDefaultImpl`` / ``virEventRunDefaultImpl``) on a thread
of its own, and turns them into :class:`~ceilometer_qga.liveness.
Observation` objects at once:

* agent connected -> ``ok``; agent disconnected -> ``not_connected``
  (not with reason "domain started": the channel of a booting guest),
  held back ``[guest_agent_events] disconnect_hold`` seconds: a guest that
  shuts down or is paused or migrated closes the channel too, and its
  domain event, if it comes within the hold, replaces the "down";
  an agent that connects again within the hold (systemd's
  ``Restart=always`` in Debian's and Fedora's ``qemu-guest-agent``
  units restarts a killed agent at once) is no "down" either;
* domain suspended -> ``paused`` (``migrating`` when the detail is a
  migration); shut down or stopped -> ``shutdown`` (``migrating`` when
  migrated away); neither is ever "down".

Every domain lifecycle event (started, suspended, resumed, shut down,
stopped, migrated...) and every agent event also goes to ``changed`` with
the domain's UUID: the poller then opens, refreshes or closes that guest's
session without waiting for the next discovery
(:meth:`~ceilometer_qga.poller.Poller.guest_changed`).

Only the standard channel has these events: a guest polled over the
dedicated channel (a socket the poller owns) is left to the heartbeat,
and its agent events are ignored.  A hung agent keeps its port open and
makes no event either: the heartbeat finds it.
"""

from __future__ import annotations

from collections.abc import Callable
import threading
import time
from typing import Any

from oslo_log import log as logging

from ceilometer_qga.guest import STANDARD_CHANNEL
from ceilometer_qga import libvirt_host
from ceilometer_qga import liveness as liveness_mod

LOG = logging.getLogger(__name__)

# libvirt's constants by number: this module imports without libvirt.
AGENT_CONNECTED = 1      # VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_*
AGENT_DISCONNECTED = 2
REASON_DOMAIN_STARTED = 1  # VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_*
EVENT_DEFINED = 0        # virDomainEventType
EVENT_UNDEFINED = 1
EVENT_STARTED = 2
EVENT_SUSPENDED = 3
EVENT_RESUMED = 4
EVENT_STOPPED = 5
EVENT_SHUTDOWN = 6
SUSPENDED_MIGRATED = 1   # virDomainEventSuspendedDetailType
STOPPED_MIGRATED = 3     # virDomainEventStoppedDetailType

#: the event loop is process-wide in libvirt: registered once
_loop_lock = threading.Lock()
_loop_started = False


def _start_default_loop(libvirt: Any) -> None:
    """Register libvirt's default event loop and run it on a thread.

    Must happen before the connection that wants events is opened.
    """
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except Exception:
                    LOG.exception('libvirt event loop iteration failed')
                    time.sleep(1)

        threading.Thread(target=run, name='libvirt-events',
                         daemon=True).start()
        _loop_started = True


def domain_observation(event: int, detail: int) -> str | None:
    """The agent state a domain lifecycle event means, or None."""
    if event == EVENT_SUSPENDED:
        return 'migrating' if detail == SUSPENDED_MIGRATED else 'paused'
    if event == EVENT_STOPPED:
        return 'migrating' if detail == STOPPED_MIGRATED else 'shutdown'
    if event == EVENT_SHUTDOWN:
        return 'shutdown'
    return None


class LibvirtEvents:
    """Agent and domain events of ``uri``, to ``observe`` (module doc).

    :param observe: takes a list of observations; called on libvirt's
        event thread or the hold's timer thread
    :param uses_standard_channel: whether the poller reaches this instance
        over the standard channel (only then do agent events count)
    :param changed: takes the UUID of a domain whose state or agent
        channel changed (after the observation, if any, was made); called
        on libvirt's event thread
    """

    def __init__(self, uri: str, hold: float,
                 observe: Callable[[list[liveness_mod.Observation]], None],
                 uses_standard_channel: Callable[[str], bool],
                 changed: Callable[[str], None] | None = None) -> None:
        self.uri = uri
        self.hold = hold
        self.observe = observe
        self.uses_standard_channel = uses_standard_channel
        self.changed = changed
        self._libvirt = libvirt_host.import_libvirt(
            '[guest_agent_events] libvirt_events')
        self._conn: Any = None
        self._callbacks: list[int] = []
        #: instance id -> monotonic time of its last domain event
        self._domain_events: dict[str, float] = {}
        #: instance id -> monotonic time of its agent's last connection
        self._connected: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the connection and register the callbacks."""
        libvirt = self._libvirt
        _start_default_loop(libvirt)
        self._conn = libvirt.openReadOnly(self.uri)
        self._callbacks.append(self._conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle,
            None))
        try:
            self._callbacks.append(self._conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE,
                self._agent, None))
        except libvirt.libvirtError as exc:
            # e.g. libvirt's test driver: only the domain events then.
            LOG.info('libvirt %s has no agent lifecycle events (%s); the '
                     'heartbeat alone notices dead agents', self.uri, exc)
        LOG.info('Listening for libvirt agent and domain events on %s',
                 self.uri)

    def _lifecycle(self, conn: Any, dom: Any, event: int, detail: int,
                   opaque: Any) -> None:
        if event in (EVENT_DEFINED, EVENT_UNDEFINED):
            return  # configuration only: nothing runs or stops
        instance_id = dom.UUIDString()
        state = domain_observation(event, detail)
        if state is not None:
            with self._lock:
                self._domain_events[instance_id] = time.monotonic()
            self._emit(instance_id, state, 'libvirt: domain event %d '
                       'detail %d' % (event, detail))
        self._changed(instance_id)

    def _agent(self, conn: Any, dom: Any, state: int, reason: int,
               opaque: Any) -> None:
        instance_id = dom.UUIDString()
        # The channel's state in the live XML changed: the session's copy
        # of it decides whether the heartbeat may ask.
        self._changed(instance_id)
        if not self.uses_standard_channel(instance_id):
            return
        if state == AGENT_CONNECTED:
            with self._lock:
                self._connected[instance_id] = time.monotonic()
            self._emit(instance_id, 'ok', None)
        elif state == AGENT_DISCONNECTED:
            if reason == REASON_DOMAIN_STARTED:
                # libvirt's word for "the domain just started, the agent is
                # not there yet": a boot, not a death.
                return
            seen = time.monotonic()
            if self.hold <= 0:
                self._disconnected(instance_id, seen)
                return
            timer = threading.Timer(self.hold, self._disconnected,
                                    (instance_id, seen))
            timer.daemon = True
            timer.start()

    def _disconnected(self, instance_id: str, seen: float) -> None:
        with self._lock:
            if self._domain_events.get(instance_id, -1.0) >= seen:
                return  # paused, shut down, migrated: said already
            if self._connected.get(instance_id, -1.0) >= seen:
                return  # restarted within the hold: back already
        self._emit(instance_id, 'not_connected',
                   'libvirt: the agent closed %s' % STANDARD_CHANNEL)

    def _changed(self, instance_id: str) -> None:
        if self.changed is None:
            return
        try:
            self.changed(instance_id)
        except Exception:
            LOG.exception('Guest %s: libvirt event not taken', instance_id)

    def _emit(self, instance_id: str, state: str,
              reason: str | None) -> None:
        try:
            self.observe([liveness_mod.Observation(
                instance_id=instance_id, state=state, answered=False,
                reason=reason, partial=True)])
        except Exception:
            LOG.exception('Guest %s: libvirt event not taken', instance_id)

    def close(self) -> None:
        """Deregister the callbacks and close the connection."""
        if self._conn is None:
            return
        for callback in self._callbacks:
            try:
                self._conn.domainEventDeregisterAny(callback)
            except self._libvirt.libvirtError:
                pass
        try:
            self._conn.close()
        except self._libvirt.libvirtError:
            pass
        self._conn = None
