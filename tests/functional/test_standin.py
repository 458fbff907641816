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

"""The stand-in guests of tests/fixtures/agents/qga_standin.py, against real qemu-ga 7.2."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess

import pytest

from ceilometer_qga.qga import policy
from tests.fixtures.agents import qga_standin
from tests.fixtures import processes as procs
from tests.fixtures import qga

pytestmark = pytest.mark.functional

STANDIN = 'tests.fixtures.agents.qga_standin'


def _enabled(client: qga.RawClient) -> dict[str, bool]:
    info = client.call('guest-info')
    return {c['name']: c['enabled'] for c in info['supported_commands']}


def test_fleet_of_three_answers_ping(qga_fleet):
    assert len(qga_fleet) == 3
    assert len({g.pid for g in qga_fleet}) == 3
    for guest in qga_fleet:
        assert len(guest.socket) < 108
        with qga.RawClient(guest.socket) as client:
            assert client.call('guest-ping') == {}
            assert client.call('guest-info')['version'].startswith('7.')


def test_only_read_only_commands_stay_enabled(qga_guest):
    with qga.RawClient(qga_guest.socket) as client:
        enabled = _enabled(client)
        with pytest.raises(RuntimeError, match='has been disabled'):
            client.call('guest-exec', {'path': '/bin/true'})
    on = {name for name, flag in enabled.items() if flag}
    assert on <= policy.READ_ONLY_COMMANDS
    for dangerous in ('guest-exec', 'guest-shutdown', 'guest-file-write',
                      'guest-set-user-password', 'guest-fsfreeze-freeze'):
        assert enabled[dangerous] is False
    # what the poller needs is still there
    assert {'guest-ping', 'guest-get-fsinfo', 'guest-file-read'} <= on


def test_extra_blocked_command_shows_disabled(qga_guest_factory):
    blocked = qga_guest_factory('blk', extra_block=['guest-get-users'])
    plain = qga_guest_factory('plain')
    with qga.RawClient(blocked.socket) as client:
        assert _enabled(client)['guest-get-users'] is False
        with pytest.raises(RuntimeError, match='CommandNotFound'):
            client.call('guest-get-users')
    with qga.RawClient(plain.socket) as client:
        assert _enabled(client)['guest-get-users'] is True
        assert isinstance(client.call('guest-get-users'), list)


def test_supervisor_restarts_agent_after_unread_reply(qga_guest):
    first_pid = qga_guest.pid
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(qga_guest.socket)
    sock.sendall(b'{"execute": "guest-info"}\n')
    # Wait until the reply sits in our receive buffer, then leave without
    # reading it: the kernel resets the connection and qemu-ga 7.2 exits.
    readable, _, _ = select.select([sock], [], [], 5)
    assert readable, 'qemu-ga did not answer guest-info'
    sock.close()
    procs.wait_until(lambda: qga_guest.restarts >= 1, 10, 'supervisor restart')
    qga_guest.wait_ready(10)
    assert qga_guest.pid != first_pid
    assert not procs.pid_alive(first_pid)
    assert qga_guest.pids[0] == first_pid
    with qga.RawClient(qga_guest.socket) as client:
        assert client.call('guest-ping') == {}


def test_fleet_stop_leaves_nothing_running(short_tmpdir):
    fleet = qga_standin.StandinFleet(2, workdir=short_tmpdir).start()
    pids = [g.pid for g in fleet]
    assert all(procs.pid_alive(p) for p in pids)
    fleet.stop()
    assert not any(procs.pid_alive(p) for p in pids)
    assert not any(os.path.exists(g.socket) for g in fleet)


def test_own_workdir_is_removed():
    with qga_standin.StandinFleet(1) as fleet:
        workdir = fleet.workdir
        assert workdir.startswith('/tmp/qga')
        assert os.path.isdir(workdir)
    assert not os.path.exists(workdir)


def test_block_list_is_complement_of_allow_list():
    known = set(qga_standin.known_commands())
    blocked = set(qga_standin.block_list(['guest-get-users']))
    assert blocked == (known - policy.READ_ONLY_COMMANDS) | {'guest-get-users'}
    assert 'guest-exec' in blocked and 'guest-ping' not in blocked


def _read_lines(proc: subprocess.Popen, count: int, timeout: float) -> list[str]:
    # os.read on the pipe, not readline: a buffered reader would swallow
    # several lines at once and select() would then wait for nothing.
    data = b''
    fd = proc.stdout.fileno()
    while data.count(b'\n') < count:
        readable, _, _ = select.select([fd], [], [], timeout)
        assert readable, 'no output from qga_standin.py within %ss' % timeout
        chunk = os.read(fd, 4096)
        assert chunk, 'qga_standin.py exited early'
        data += chunk
    return data.decode().splitlines()[:count]


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGKILL])
def test_cli_agents_die_with_it(processes, short_tmpdir, sig):
    """SIGTERM: clean stop. SIGKILL: the agents follow it (pdeathsig)."""
    proc = processes.start(procs.python_module(STANDIN, '--count', '2',
                                               '--workdir', short_tmpdir),
                           stdout=subprocess.PIPE, cwd=procs.ROOT)
    lines = _read_lines(proc, 2, 15)
    pids = [int(line.split()[-1]) for line in lines]
    assert all(procs.pid_alive(p) for p in pids)
    os.kill(proc.pid, sig)
    rc = proc.wait(10)
    assert rc == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    procs.wait_until(lambda: not any(procs.pid_alive(p) for p in pids), 5,
                     'stand-in agents to exit')
