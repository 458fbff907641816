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

"""libvirt's domain events reach the liveness observations at once.

Real here: libvirt's default event loop and its in-process ``test:///
default`` driver, which emits the domain lifecycle events of the domains
this test suspends, resumes and destroys.  What cannot run here: the test
driver has no guest agent, so it never emits ``VIR_DOMAIN_EVENT_ID_
AGENT_LIFECYCLE``; the agent callback is called with libvirt's own
arguments (state DISCONNECTED = 2, reason CHANNEL = 2) to check the hold
that a following domain event cancels.  The e2e VM test covers the real
agent events.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

from oslo_config import cfg
import oslo_messaging
import pytest

from ceilometer_qga import conf as qga_conf
from ceilometer_qga import libvirt_events
from ceilometer_qga import liveness
from ceilometer_qga.observers import events as events_mod
from ceilometer_qga import pipeline as pipeline_mod
from tests.fixtures import nova_domain
from tests.fixtures.nova_domain import MONITOR
from tests.fixtures.nova_domain import STANDARD
from tests.fixtures import processes as processes_mod
from tests.fixtures import rabbit

pytestmark = pytest.mark.functional


class Seen:
    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, observations):
        with self.lock:
            self.items.extend(observations)

    def states(self, instance_id):
        with self.lock:
            return [o.state for o in self.items
                    if o.instance_id == instance_id]


@pytest.fixture
def listening(hypervisor):
    seen = Seen()
    events = libvirt_events.LibvirtEvents(
        hypervisor.URI, 0.5, seen, lambda instance_id: True)
    events.start()
    try:
        yield hypervisor, events, seen
    finally:
        events.close()


def start_domain(hypervisor):
    instance_id = str(uuid.uuid4())
    dom = hypervisor.start(nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=instance_id, domain_name='instance-%s' % instance_id[:8],
        channels=((STANDARD, '/tmp/qga-events-%s.sock' % instance_id[:8]),))))
    return instance_id, dom


def test_pause_and_stop_are_observed_at_once_and_never_down(listening):
    hypervisor, _events, seen = listening
    instance_id, dom = start_domain(hypervisor)
    dom.suspend()
    processes_mod.wait_until(lambda: 'paused' in seen.states(instance_id),
                             10, 'the paused observation')
    dom.resume()
    dom.destroy()
    processes_mod.wait_until(lambda: 'shutdown' in seen.states(instance_id),
                             10, 'the shutdown observation')
    assert seen.states(instance_id) == ['paused', 'shutdown']
    assert all(o.partial and o.liveness == 'unknown' for o in seen.items)


def test_disconnect_explained_by_a_domain_event_is_not_down(listening):
    hypervisor, events, seen = listening
    instance_id, dom = start_domain(hypervisor)
    # What libvirt calls when the guest closes the channel (see docstring).
    events._agent(None, dom, libvirt_events.AGENT_DISCONNECTED, 2, None)
    dom.suspend()
    processes_mod.wait_until(lambda: 'paused' in seen.states(instance_id),
                             10, 'the paused observation')
    # Past the hold: still no "down".
    other_id, other = start_domain(hypervisor)
    events._agent(None, other, libvirt_events.AGENT_DISCONNECTED, 2, None)
    processes_mod.wait_until(
        lambda: 'not_connected' in seen.states(other_id), 10,
        'the unexplained disconnect')
    assert seen.states(instance_id) == ['paused']


def test_an_agent_back_within_the_hold_is_not_down(listening):
    """Debian's qemu-guest-agent unit (``Restart=always``, ``RestartSec=0``)
    restarts a killed agent at once: disconnected, then connected again
    within the hold, is no "down"; a disconnect that stays is.
    """
    hypervisor, events, seen = listening
    restarted, dom = start_domain(hypervisor)
    killed, other = start_domain(hypervisor)
    # What libvirt calls when the guest closes and reopens the channel.
    events._agent(None, dom, libvirt_events.AGENT_DISCONNECTED, 2, None)
    events._agent(None, dom, libvirt_events.AGENT_CONNECTED, 2, None)
    events._agent(None, other, libvirt_events.AGENT_DISCONNECTED, 2, None)
    processes_mod.wait_until(lambda: 'not_connected' in seen.states(killed),
                             10, 'the disconnect that stays')
    # Both holds began together; the one that stayed has passed.
    assert seen.states(restarted) == ['ok']


def test_both_callbacks_are_registered_on_the_real_connection(listening):
    """The domain and the agent lifecycle callbacks, each with its own id
    from libvirt's virConnectDomainEventRegisterAny.
    """
    _hv, events, _seen = listening
    assert len(set(events._callbacks)) == 2


class Bus:
    """oslo.messaging endpoint keeping our state-change payloads."""

    def __init__(self):
        self.payloads = []
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.payloads.append(payload)
        return oslo_messaging.NotificationResult.HANDLED

    def states(self, instance_id):
        with self.lock:
            return [p['state'] for p in self.payloads
                    if p['instance_id'] == instance_id]


async def until(predicate, timeout, what):
    """Wait on the poller's own loop (its sessions live there)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'no %s within %ss' % (what, timeout)
        await asyncio.sleep(0.02)


def test_sessions_follow_domain_events_between_discoveries(
        hypervisor, qga_guest, rabbit_vhost, short_tmpdir):
    """A domain started, paused, resumed or stopped after a sweep has its
    session opened, updated or closed at once, not at the next discovery.

    The pipeline qga-polling runs (:class:`~ceilometer_qga.pipeline.
    Pipeline`), in this process because ``test:///default`` lives in one
    process; the guest's monitor channel is a real ``qemu-ga`` 7.2
    stand-in; the state changes go through RabbitMQ.  The sweep interval
    is irrelevant: only the first sweep runs, before the domain exists.
    """
    url = rabbit.vhost_url(rabbit_vhost)
    conf_file = os.path.join(short_tmpdir, 'qga-polling.conf')
    with open(conf_file, 'w') as f:
        f.write(f"""[DEFAULT]
host = events-test
transport_url = {url}
[qga_polling]
discovery = libvirt
transport = socket
publishers = file://{short_tmpdir}/samples.jsonl
interval = 600
heartbeat_interval = 0.2
command_timeout = 1
guest_budget = 5
[libvirt_discovery]
uri = {hypervisor.URI}
[guest_agent_events]
enabled = true
damping_interval = 0
startup_grace = 0
""")
    conf = cfg.ConfigOpts()
    qga_conf.register_opts(conf)
    conf(['--config-file', conf_file], project='qga-test',
         default_config_files=[], default_config_dirs=[])
    instance_id = str(uuid.uuid4())
    bus = Bus()
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications',
                                          exchange='ceilometer')],
        [bus], executor='threading', pool='qga-test-sessions')
    listener.start()

    async def scenario():
        runner = pipeline_mod.Pipeline(conf)
        sessions = runner.poller.sessions
        [events] = [o for o in runner.observers
                    if isinstance(o, events_mod.StateChangeEvents)]
        try:
            first = await runner.run_once()
            assert instance_id not in {r.guest.instance_id
                                       for r in first.reports}
            dom = hypervisor.start(nova_domain.nova_domain_xml(
                nova_domain.Server(
                    uuid=instance_id, domain_name='instance-events',
                    channels=((MONITOR, qga_guest.socket),))))
            # Started: a session at once, which the heartbeat asks.
            await until(lambda: instance_id in sessions, 10,
                        'session for the started domain')
            await until(lambda: 'ok' in bus.states(instance_id), 30,
                        'ok from the heartbeat of the new session')
            dom.suspend()
            await until(lambda: sessions[instance_id].guest.metadata.get(
                'state') == 'paused', 10, 'the paused state in the session')
            dom.resume()
            await until(lambda: sessions[instance_id].guest.metadata.get(
                'state') == 'running', 10, 'the running state again')
            dom.destroy()
            await until(lambda: instance_id not in sessions, 10,
                        'the stopped domain\'s session to close')
            # The heartbeat no longer asks the stopped guest: several beats
            # later, still no "down" for it.
            beats = events.heartbeat.beats
            await until(lambda: events.heartbeat.beats >= beats + 3, 30,
                        'three more heartbeats')
            await until(lambda: 'shutdown' in bus.states(instance_id), 30,
                        'the shutdown event on the bus')
        finally:
            await runner.close()

    try:
        asyncio.run(scenario())
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    states = bus.states(instance_id)
    assert states[0] == 'ok', states
    assert 'paused' in states and states[-1] == 'shutdown', states
    assert not [s for s in states if liveness.liveness(s) == 'down'], states
