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

"""The fake fleet of ``make bench`` against real qemu-ga 7.2.

Real parts: a qemu-ga stand-in guest (tests/fixtures/agents/qga_standin.py) and the
``tests/bench/fake_fleet.py`` process.  The same bytes go to both and the
replies are compared, so that the fake's framing (0xFF, sync, id echo,
errors, file handles) stays what the real agent does.
"""

import json
import os

import pytest

from tests.bench import fake_fleet
from tests.fixtures.agents.record_qga_replies import exchange
from tests.fixtures import processes

pytestmark = pytest.mark.functional

#: exchanges whose replies must be byte-identical on both
SAME_BYTES = [
    b'\xff{"execute": "guest-sync-delimited", "arguments": {"id": 4242}}\n',
    b'{"execute": "guest-ping", "id": 7}\n{"execute": "guest-ping", '
    b'"id": "abc"}\n{"execute": "guest-no-such-command", "id": 8}\n'
    b'{"execute": "guest-sync-delimited", "arguments": {"id": 99}, '
    b'"id": 9}\n',
    b'{"execute": "guest-sync", "arguments": {"id": 5}}\n',
    b'{"execute": "guest-file-read", "arguments": {"handle": 999999, '
    b'"count": 16}}\n',
    b'{"execute": "guest-ping", "arguments": {"x": 1}}\n',
    b'{"execute": "guest-exec", "id": 1}\n',
    b'{"execute": "guest-get-load", "id": 2}\n',
]


@pytest.fixture
def fleet(short_tmpdir):
    with fake_fleet.FakeFleet(short_tmpdir, 3, silent_every=3) as running:
        yield running


@pytest.mark.parametrize('data', SAME_BYTES)
def test_framing_is_byte_identical_to_real_qemu_ga(qga_guest, fleet, data):
    real = exchange(qga_guest.socket, data)
    fake = exchange(fleet.sockets[0], data)
    assert real  # every exchange above gets an answer from the real agent
    assert fake == real


def test_file_reads_and_commands_match_real_shapes(qga_guest, fleet):
    conversation = (
        b'\xff{"execute": "guest-sync-delimited", "arguments": {"id": 1}}\n'
        b'{"execute": "guest-file-open", "arguments": {"path": '
        b'"/proc/loadavg", "mode": "r"}, "id": 10}\n'
        b'{"execute": "guest-file-read", "arguments": {"handle": 1000, '
        b'"count": 16384}, "id": 11}\n'
        b'{"execute": "guest-file-read", "arguments": {"handle": 1000, '
        b'"count": 16384}, "id": 12}\n'
        b'{"execute": "guest-file-close", "arguments": {"handle": 1000}, '
        b'"id": 13}\n'
        b'{"execute": "guest-get-vcpus", "id": 14}\n'
        b'{"execute": "guest-info", "id": 15}\n')

    def replies(path):
        raw = exchange(path, conversation)
        lines = raw.split(b'\xff', 1)[1].splitlines()
        return [json.loads(line) for line in lines]
    real, fake = replies(qga_guest.socket), replies(fleet.sockets[0])
    assert [list(r) for r in fake] == [list(r) for r in real]  # key order
    assert [r.get('id') for r in fake] == [None, 10, 11, 12, 13, 14, 15]
    assert fake[1]['return'] == real[1]['return'] == 1000
    assert fake[2]['return']['eof'] is real[2]['return']['eof'] is True
    assert fake[3]['return'] == real[3]['return'] == {
        'count': 0, 'buf-b64': '', 'eof': True}
    assert fake[5]['return'] == real[5]['return']
    assert ({c['name']: c['enabled'] for c in fake[6]['return'][
        'supported_commands']}
            == {c['name']: c['enabled'] for c in real[6]['return'][
                'supported_commands']}), (
        'the stand-in blocks other commands now: record again with '
        'tests/fixtures/agents/record_qga_replies.py')


def test_every_kth_guest_is_silent(fleet):
    assert [fleet.silent(i) for i in range(3)] == [False, False, True]
    assert exchange(fleet.sockets[2], SAME_BYTES[0]) == b''
    assert exchange(fleet.sockets[1], SAME_BYTES[0]).endswith(
        b'\xff{"return": 4242}\n')


def test_stop_removes_the_sockets_and_the_process(short_tmpdir):
    running = fake_fleet.FakeFleet(short_tmpdir, 2).start()
    pid = running.proc.pid
    assert all(os.path.exists(p) for p in running.sockets)
    running.stop()
    assert not processes.pid_alive(pid)
    assert not any(os.path.exists(p) for p in running.sockets)
