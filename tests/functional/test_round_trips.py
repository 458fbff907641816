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

"""Round trips per guest per sweep, against a real qemu-ga 7.2 stand-in.

Issue 10: "fewer round trips per guest per sweep ... nothing re-asked that
cannot have changed".  After the first sweep (capabilities and OS facts
cached) a qemu-ga 7.2 guest costs four writes: the ping, one batch (freeze
status, six native commands, the two ``/proc`` opens), the two reads, the
two closes (``ceilometer_qga/prefetch.py``).  The writes are counted where
the socket transport sends (a wrapper around its ``_send``, in this
process); everything else is the real agent.
"""

import asyncio
import json
import shutil
import tempfile

import pytest

from ceilometer_qga import pipeline as pipeline_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import guest_file
from ceilometer_qga.qga import transport_socket
from tests.fixtures.agents.qga_standin import StandinFleet
from tests.fixtures.static_guests import make_conf

pytestmark = pytest.mark.functional

UUIDS = ['33333333-3333-4333-8333-%012d' % i for i in range(1, 3)]


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix='qgar', dir='/tmp')
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def writes(monkeypatch):
    """Every write of the socket transport: the commands in it."""
    sent: list[list[str]] = []
    original = transport_socket.SocketTransport._send

    async def counting(self, data, command):
        sent.append([json.loads(line.lstrip(b'\xff'))['execute']
                     for line in data.splitlines()])
        return await original(self, data, command)

    monkeypatch.setattr(transport_socket.SocketTransport, '_send', counting)
    return sent


def test_steady_sweep_is_four_writes_and_the_same_samples(workdir, writes):
    with StandinFleet(1, workdir=workdir) as fleet:
        # Every collector in every sweep, so that both sweeps ask alike.
        conf = make_conf([(UUIDS[0], fleet[0].socket)],
                         collector_intervals={'filesystem': '0',
                                              'vcpus': '0'})

        async def run():
            runner = pipeline_mod.Pipeline(conf)
            try:
                first = await runner.run_once()
                before = len(writes)
                second = await runner.run_once()
                return first, writes[before:], second
            finally:
                await runner.close()
        first, steady, second = asyncio.run(run())
    assert [len(w) for w in steady] == [1, 9, 2, 2]
    assert steady[0] == ['guest-ping']
    assert steady[1][0] == 'guest-fsfreeze-status'
    assert steady[1][-2:] == ['guest-file-open', 'guest-file-open']
    assert steady[2] == ['guest-file-read'] * 2
    assert steady[3] == ['guest-file-close'] * 2
    # Nothing is lost by asking this way: the same meters of the same
    # resources as the first sweep, which asked one command at a time for
    # what it had to learn first.
    assert (sorted((s.name, s.resource_id) for s in first.samples)
            == sorted((s.name, s.resource_id) for s in second.samples))
    assert len({s.name for s in second.samples}) == 26


def test_files_opened_in_a_batch_are_read_and_closed(workdir):
    """read_opened against the real agent: texts, a failed open kept as
    its error, and every handle closed (the agent accepts a new open).
    """
    with StandinFleet(1, workdir=workdir) as fleet:
        async def run():
            tr = transport_socket.SocketTransport('g', fleet[0].socket, 2.0,
                                                  1 << 20)
            try:
                opens = await tr.execute_batch(
                    [guest_file.open_request('/proc/meminfo'),
                     guest_file.open_request('/proc/loadavg')])
                failed = errors.CommandFailed('g', 'guest-file-open', 'gone')
                texts = await guest_file.read_opened(
                    tr, {'/proc/meminfo': opens[0], '/proc/loadavg': opens[1],
                         '/proc/diskstats': failed})
                closed = await tr.execute_batch(
                    [('guest-file-close', {'handle': h}) for h in opens])
                return texts, closed
            finally:
                await tr.close()
        texts, closed = asyncio.run(run())
    assert texts['/proc/meminfo'].startswith('MemTotal:')
    assert len(texts['/proc/loadavg'].split()) == 5
    assert isinstance(texts['/proc/diskstats'], errors.CommandFailed)
    # Closing again fails: read_opened closed them already.
    assert all(isinstance(r, errors.CommandFailed) for r in closed)
