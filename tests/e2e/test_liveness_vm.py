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

"""libvirt's agent and domain events from a real VM reach the liveness
observations at once, and a stopped domain never reads "down".

Real here: a TCG VM under the private libvirtd (``tests/e2e/conftest.py``)
whose ``qemu-ga`` on the standard channel starts ``LATE`` seconds after
init (the ``late`` variant of ``tests/fixtures/build_guest_image.py``), libvirt's
default event loop and :class:`~ceilometer_qga.libvirt_events.
LibvirtEvents` on its own read-only connection.  The time from the agent
opening its port (libvirt's AGENT_LIFECYCLE connected event) to the
observation is printed, not asserted.
"""

from __future__ import annotations

import threading
import time

import pytest

from ceilometer_qga import libvirt_events
from tests.fixtures import processes as processes_mod

pytestmark = pytest.mark.e2e

LATE = 5


class Seen:
    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, observations):
        with self.lock:
            self.items.extend((time.monotonic(), o) for o in observations)

    def states(self, instance_id):
        with self.lock:
            return [o.state for _t, o in self.items
                    if o.instance_id == instance_id]


def test_agent_connect_pause_and_stop_events(libvirtd, vm_launcher):
    seen = Seen()
    events = libvirt_events.LibvirtEvents(libvirtd.uri, 2.0, seen,
                                          lambda instance_id: True)
    events.start()
    try:
        vm = vm_launcher.start_guest('liveness', variant='late', delay=LATE,
                                     data_disk=False, monitor_channel=False)
        # The agent opens the standard channel: libvirt says so at once.
        processes_mod.wait_until(lambda: 'ok' in seen.states(vm.uuid), 300,
                                 'the agent connected event')
        vm.dom.suspend()
        processes_mod.wait_until(lambda: 'paused' in seen.states(vm.uuid),
                                 30, 'the paused event')
        vm.dom.resume()
        stopped = time.monotonic()
        vm.dom.destroy()
        processes_mod.wait_until(lambda: 'shutdown' in seen.states(vm.uuid),
                                 30, 'the stopped event')
        # Past the disconnect hold: the agent's disconnect, explained by
        # the domain's stop, is no "down".
        processes_mod.wait_until(lambda: time.monotonic() > stopped + 3, 10,
                                 'the hold to pass')
        assert 'not_connected' not in seen.states(vm.uuid), seen.states(vm.uuid)
        assert seen.states(vm.uuid)[0] == 'ok'
    finally:
        events.close()
    print('liveness events of %s: %s' % (vm.uuid, seen.states(vm.uuid)))
