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

import threading
import uuid

import pytest

from ceilometer_qga import libvirt_events
from tests.fixtures import processes as processes_mod
from tests.fixtures import nova_domain
from tests.fixtures.nova_domain import STANDARD

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


def test_both_callbacks_are_registered_on_the_real_connection(listening):
    """The domain and the agent lifecycle callbacks, each with its own id
    from libvirt's virConnectDomainEventRegisterAny."""
    _hv, events, _seen = listening
    assert len(set(events._callbacks)) == 2
