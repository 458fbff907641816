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

"""Agent state changes as notifications that become Ceilometer events.

:class:`StateChangeEvents` is the sweep observer ``[guest_agent_events]
enabled`` turns on, in ``qga-polling`` and in Ceilometer's compute agent
alike (:mod:`ceilometer_qga.pollsters.polling_cycle` feeds it each sweep).
Each sweep's reports go through a :class:`~ceilometer_qga.liveness.
LivenessTracker`; every change it lets through is one oslo.messaging
notification:

* ``event_type`` :data:`EVENT_TYPE` (``guest_agent.state.change``, after
  Ceilometer's ``<resource>.<what>.<action>`` names such as
  ``compute.instance.power_off.end``), priority ``info``;
* ``publisher_id`` ``qga-monitor.<host>``;
* exchange ``ceilometer`` (``set_transport_defaults``, as the samples'
  ``notifier://`` publisher), topic ``notifications`` unless
  ``[guest_agent_events] topics`` says otherwise: where Ceilometer's
  notification agent listens by default;
* the payload of :meth:`~ceilometer_qga.liveness.Change.payload`, which
  ``etc/ceilometer/event_definitions.yaml`` maps onto traits.

Why not Ceilometer's publisher path inside ``ceilometer-polling``: the
polling manager publishes samples only (``telemetry.polling``); an event
has to enter Ceilometer where OpenStack services' notifications do, the
notification agent's event endpoint.  So this module is its own
oslo.messaging ``Notifier`` on the agent's bus in both modes.

Sending happens on a thread of its own: :meth:`sweep_done` runs on the
poller's event loop and must not wait for the broker.  The queue is
bounded; what does not fit is dropped with a warning.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging
from oslo_utils import timeutils

from ceilometer_qga import discovery
from ceilometer_qga.guest import STANDARD_CHANNEL
from ceilometer_qga import heartbeat as heartbeat_mod
from ceilometer_qga import libvirt_events as libvirt_events_mod
from ceilometer_qga import liveness as liveness_mod
from ceilometer_qga import observers

LOG = logging.getLogger(__name__)

EVENT_TYPE = 'guest_agent.state.change'
PUBLISHER = 'qga-monitor'
EXCHANGE = 'ceilometer'
#: state changes waiting for the broker at most
QUEUE_SIZE = 10000
#: connection retries per send (never unbounded: a dead broker must not
#: hold the changes that follow forever)
RETRY = 3


#: this observer's group, and its entry point's name
GROUP = 'guest_agent_events'

OPTS = [
    cfg.BoolOpt('enabled',
                default=False,
                help='Send one notification on the bus (event type '
                     'guest_agent.state.change, exchange "ceilometer") each '
                     'time a guest\'s agent state changes, for Ceilometer\'s '
                     'notification agent to turn into an event and Aodh\'s '
                     'event alarms to act on (etc/ceilometer/'
                     'event_definitions.yaml). The states present at the '
                     'first sweep are sent once. The bus is '
                     '[oslo_messaging_notifications] transport_url, else '
                     '[DEFAULT] transport_url.'),
    cfg.ListOpt('topics',
                default=[],
                help='Topics the state changes are sent to; empty: '
                     '[oslo_messaging_notifications] topics ("notifications", '
                     'where Ceilometer\'s notification agent listens).'),
    cfg.FloatOpt('damping_interval',
                 default=30.0, min=0.0,
                 help='Least seconds between two state-change events of one '
                      'guest. The first change is sent at once; changes '
                      'within the interval are merged into one event with '
                      'the state the guest is in when it has passed (none if '
                      'it is back in the state last sent), so a flapping '
                      'agent costs one event per interval.'),
    cfg.FloatOpt('startup_grace',
                 default=120.0, min=0.0,
                 help='Seconds a guest that appears while the poller runs '
                      '(booted, migrated or resumed here) may go without an '
                      'answering agent before "down" is sent: the agent '
                      'starts after the guest\'s kernel. Guests present at '
                      'the poller\'s first sweep get no grace.'),
    cfg.BoolOpt('libvirt_events',
                default=True,
                help='When the discovery lists libvirt domains ([qga_polling] '
                     'discovery = libvirt), listen on the same hypervisor for '
                     'libvirt\'s agent lifecycle events (the guest opened or '
                     'closed the standard agent channel) and domain events '
                     '(paused, shut down, migrated) and send the state '
                     'change at once instead of at the next heartbeat or '
                     'sweep; the same events open, refresh or close the '
                     'guest\'s session (started, paused, resumed, stopped, '
                     'migrated) without waiting for the next discovery.'),
    cfg.FloatOpt('disconnect_hold',
                 default=1.0, min=0.0,
                 help='Seconds a "down" from libvirt\'s agent-disconnected '
                      'event waits for a domain event (paused, shut down, '
                      'migrated) that explains it, or for the agent to '
                      'connect again (systemd restarting a killed agent); '
                      'if one comes, no "down" is sent. A guest shut down '
                      'from inside closes the '
                      'channel before its domain stops: raise this to the '
                      'time your guests take from stopping the agent to '
                      'powering off to keep such shutdowns from ever '
                      'reading "down", at the cost of slower detection of '
                      'killed agents.'),
    cfg.StrOpt('state_file',
               help='File keeping the state last sent for each guest, so '
                    'that a restarted poller sends only the states that '
                    'changed meanwhile instead of one event per guest. '
                    'Unset: every guest\'s state is sent once after a '
                    'start.'),
]


class StateChangeEvents(observers.SweepObserver):
    """The agents' state changes on the bus (module docstring)."""

    CONFIG_OPTS = OPTS

    def __init__(self, conf: cfg.ConfigOpts, opts: Any) -> None:
        super().__init__(conf, opts)
        self.host = conf.host
        self.monitor_channel = conf.qga_polling.monitor_channel_name
        self.state_file = opts.state_file
        self.tracker = liveness_mod.LivenessTracker(
            opts.damping_interval, opts.startup_grace,
            liveness_mod.load_states(self.state_file))
        oslo_messaging.set_transport_defaults(EXCHANGE)
        transport = oslo_messaging.get_notification_transport(conf)
        self.notifier = oslo_messaging.Notifier(
            transport, publisher_id='%s.%s' % (PUBLISHER, self.host),
            driver='messagingv2', topics=opts.topics or None, retry=RETRY)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(
            QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        #: the tracker is fed from the sweep's thread and the heartbeat's
        self._lock = threading.Lock()
        #: events handed to the broker, for logs and tests
        self.sent = 0
        self.heartbeat: heartbeat_mod.Heartbeat | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: instance id -> its last full observation (sweep or heartbeat):
        #: what libvirt's events, which name only the domain, lack
        self._last: dict[str, liveness_mod.Observation] = {}
        self.libvirt_events: libvirt_events_mod.LibvirtEvents | None = None
        uri = discovery.libvirt_uri(conf) if opts.libvirt_events else None
        if uri:
            self.libvirt_events = libvirt_events_mod.LibvirtEvents(
                uri, opts.disconnect_hold,
                self.observe, self._uses_standard_channel,
                self._domain_changed)
        self._started = False
        #: the poller whose sessions are the guests we judge
        self._poller: Any = None

    def bind(self, poller: Any, loop: Any = None) -> None:
        """Set up the heartbeat over ``poller``'s sessions.

        It starts with the first sweep (on the poller's loop), so that the
        first changes sent are the sweep's complete picture.  libvirt's
        events bring the poller's sessions up to date on that loop too.
        """
        self._poller = poller
        self._loop = loop
        qga = self.conf.qga_polling
        if qga.heartbeat_interval <= 0:
            return
        self.heartbeat = heartbeat_mod.Heartbeat(
            qga.heartbeat_interval, qga.command_timeout,
            lambda: list(poller.sessions.values()), self.observe)

    def sweep_done(self, result: Any) -> None:
        """Track the sweep's states; queue a notification per change."""
        self.observe([liveness_mod.observation_from_report(
            r, self.monitor_channel) for r in result.reports])
        if not self._started:
            # After the first sweep: its states are the first ones sent,
            # and threads are not started before qga-polling forks.
            self._started = True
            self._start_listeners()

    def _start_listeners(self) -> None:
        if self._loop is None:
            # qga-polling: the sweep ends on the poller's own loop.
            self._loop = asyncio.get_running_loop()
            if self.heartbeat is not None:
                self.heartbeat.start()
        elif self.heartbeat is not None:
            self._loop.call_soon_threadsafe(self.heartbeat.start)
        if self.libvirt_events is not None:
            try:
                self.libvirt_events.start()
            except Exception as exc:
                LOG.warning('libvirt events unavailable (%s); the heartbeat '
                            'and the sweeps notice state changes', exc)
                self.libvirt_events = None

    def _uses_standard_channel(self, instance_id: str) -> bool:
        session = self._session(instance_id)
        if session is not None:
            return (session.channel is not None
                    and session.channel.target_name == STANDARD_CHANNEL)
        last = self._last.get(instance_id)
        return last is not None and last.channel == STANDARD_CHANNEL

    def _session(self, instance_id: str) -> Any:
        if self._poller is None:
            return None
        return self._poller.sessions.get(instance_id)

    def _domain_changed(self, instance_id: str) -> None:
        """libvirt says a domain changed: its session follows at once."""
        poller, loop = self._poller, self._loop
        if poller is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(
                poller.guest_changed(instance_id), loop)
        except RuntimeError:
            pass  # the loop is closed: the poller is stopping

    def observe(self, observations: list[liveness_mod.Observation]) -> None:
        """Track ``observations`` (a sweep's, a heartbeat's, libvirt's)."""
        with self._lock:
            observations = [self._complete(o) for o in observations]
            observations = [o for o in observations if o is not None]
            changes = self.tracker.observe(observations)
            saved = (self.tracker.sent_states()
                     if changes and self.state_file else None)
        if not changes:
            return
        for change in changes:
            payload = change.payload(self.host)
            payload['generated'] = timeutils.utcnow().isoformat()
            LOG.info('Guest %s: agent %s -> %s (%s), event %s',
                     payload['instance_id'], payload['previous_state'],
                     payload['state'], payload['liveness'], EVENT_TYPE)
            try:
                self._queue.put_nowait(payload)
            except queue.Full:
                LOG.warning('Guest %s: state change to %s dropped: %d '
                            'changes already wait for the bus',
                            payload['instance_id'], payload['state'],
                            QUEUE_SIZE)
        if saved is not None:
            # A snapshot taken under the lock; written after the
            # notifications before it were sent.
            try:
                self._queue.put_nowait({'_save': saved})
            except queue.Full:
                pass
        self._start()

    def _complete(self, obs: liveness_mod.Observation
                  ) -> liveness_mod.Observation | None:
        """``obs`` with the guest's identity; None when it is not ours.

        libvirt's events name a domain only: its identity is the poller's
        session's (opened by a sweep or by the domain's start event), else
        the last full observation.  A domain with neither (not a Nova
        guest) is not ours to judge.  A sweep's or heartbeat's observation
        of a guest whose session an event closed meanwhile (the domain
        stopped while it was asked) is stale: its failure says nothing.
        """
        session = self._session(obs.instance_id)
        if not obs.partial:
            if self._poller is not None and session is None:
                return None
            self._last[obs.instance_id] = obs
            return obs
        if session is not None:
            guest = session.guest
            return dataclasses.replace(
                obs, project_id=guest.project_id, user_id=guest.user_id,
                agent_version=session.facts.get('agent_version'),
                channel=(session.channel.target_name
                         if session.channel is not None else None),
                partial=False)
        last = self._last.get(obs.instance_id)
        if last is None:
            return None
        return dataclasses.replace(
            obs, project_id=last.project_id, user_id=last.user_id,
            agent_version=last.agent_version, channel=last.channel,
            partial=False)

    def _start(self) -> None:
        if self._thread is None:
            # Started on first use, not in __init__: qga-polling builds its
            # pipeline before forking, and threads do not survive a fork.
            self._thread = threading.Thread(
                target=self._run, name='qga-state-events', daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if '_save' in item:
                liveness_mod.save_states(self.state_file, item['_save'])
                continue
            try:
                self.notifier.info({}, EVENT_TYPE, item)
                self.sent += 1
            except Exception as exc:
                LOG.warning('Guest %s: state change to %s not sent: %s',
                            item['instance_id'], item['state'], exc)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (within ``timeout``), then release the bus."""
        if self.libvirt_events is not None:
            self.libvirt_events.close()
        if self.heartbeat is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self.heartbeat.stop)
            except RuntimeError:
                pass  # the loop is closed: so is the task
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)
        self.notifier.transport.cleanup()
