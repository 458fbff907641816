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

"""The sweep's batch (ceilometer_qga/prefetch.py) with a recording transport.

A stand-in transport, because the point is which commands go out in which
order, for both kinds of transport: the pipelined socket one and the one
that sends a command at a time (libvirt).  The real paths are covered
against real agents: tests/functional/test_round_trips.py (qemu-ga 7.2 on
the socket transport) and tests/e2e/test_poller_vm.py::
test_frozen_then_thawed (a frozen VM through libvirt).
"""

import asyncio

from oslo_config import cfg

from ceilometer_qga.collectors import load
from ceilometer_qga.collectors import memory
from ceilometer_qga.collectors import users
from ceilometer_qga import conf as conf_mod
from ceilometer_qga import engine
from ceilometer_qga import prefetch
from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport


class Recording(transport.Transport):
    """Answers from a table; remembers every batch it was given."""

    def __init__(self, pipelined, frozen=False):
        super().__init__('g', 1.0)
        self.pipelined = pipelined
        self.frozen = frozen
        self.batches = []

    async def execute_batch(self, requests, timeout=None):
        self.batches.append([c for c, _ in requests])
        return await super().execute_batch(requests, timeout)

    async def _execute(self, command, arguments, timeout):
        if command == 'guest-fsfreeze-status':
            return 'frozen' if self.frozen else 'thawed'
        if self.frozen:
            raise errors.AgentFrozen('g', command, 'frozen state')
        if command == 'guest-file-open':
            return 7
        if command == 'guest-file-read':
            return {'buf-b64': 'MC41IDAuNCAwLjMgMS8yIDM=', 'eof': True}
        return {'guest-get-users': []}.get(command)

    async def close(self):
        pass


def _conf():
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([])
    return conf


def _caps():
    names = ['guest-fsfreeze-status', 'guest-get-users', 'guest-file-open',
             'guest-file-read', 'guest-file-close']
    return caps_mod.parse_guest_info({'version': '7.2.0', 'supported_commands': [
        {'name': n, 'enabled': True} for n in names]})


def _run(tr):
    conf = _conf()
    collectors = [users.UsersCollector(conf), load.LoadCollector(conf),
                  memory.MemoryCollector(conf)]
    caps = _caps()
    plans = engine.plan(collectors, caps, {}, conf)
    return asyncio.run(prefetch.prefetch(tr, caps, plans))


def test_pipelined_transport_gets_one_batch_then_reads_and_closes():
    tr = Recording(pipelined=True)
    out = _run(tr)
    assert tr.batches == [
        ['guest-fsfreeze-status', 'guest-get-users', 'guest-file-open',
         'guest-file-open'],
        ['guest-file-read', 'guest-file-read'],
        ['guest-file-close', 'guest-file-close']]
    assert out.freeze_status == 'thawed'
    assert set(out.files) == {'/proc/loadavg', '/proc/meminfo'}


def test_one_at_a_time_transport_sends_nothing_more_to_a_frozen_guest():
    tr = Recording(pipelined=False, frozen=True)
    out = _run(tr)
    assert tr.batches == [['guest-fsfreeze-status']]
    assert out.freeze_status == 'frozen' and not out.replies
