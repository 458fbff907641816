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

"""The fault-injecting fake agent (tests/fixtures/agents/fake_agent.py) does what it claims.

Each mode is checked from the outside, with raw sockets and timeouts, on a
fake running as a subprocess (the ``fake_agent`` fixture).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import time

import pytest

from tests.fixtures.agents import fake_agent as fake
from tests.fixtures.agents import qga_protocol
from tests.fixtures.agents import qga_standin

pytestmark = pytest.mark.functional

SYNC = b'\xff{"execute": "guest-sync-delimited", "arguments": {"id": 42}}\n'
FF_ERROR_LINE = json.dumps({'error': qga_protocol.FF_ERROR}).encode() + b'\n'


def connect(path: str, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    return sock


def read_until(sock: socket.socket, done, timeout: float = 5.0,
               limit: int = 64 * 1024 * 1024) -> bytes:
    """Receive until ``done(data)`` or EOF; fail after ``timeout``/``limit``."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while not done(data):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1024 * 1024)
        if not chunk:
            break
        data += chunk
        assert len(data) <= limit
    return bytes(data)


def read_quiet(sock: socket.socket, quiet: float = 0.2) -> bytes:
    """Receive whatever else arrives until nothing has come for ``quiet`` s.

    For replies with no end marker (garbage): the only way to know that the
    rest of them has arrived is that nothing more comes.
    """
    data = b''
    sock.settimeout(quiet)
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data
        if not chunk:
            return data
        data += chunk


def lines(count: int):
    return lambda data: data.count(b'\n') >= count


def assert_silent(sock: socket.socket, wait: float = 0.3) -> None:
    """Nothing arrives within ``wait`` seconds (and the peer did not close)."""
    sock.settimeout(wait)
    with pytest.raises(socket.timeout):
        sock.recv(1)


def call(sock: socket.socket, command: str, **arguments) -> dict:
    msg = {'execute': command}
    if arguments:
        msg['arguments'] = arguments
    sock.sendall(json.dumps(msg).encode() + b'\n')
    return json.loads(read_until(sock, lines(1)))


def synced(path: str, version: str | None = None) -> socket.socket:
    """A connection past the handshake; ``version``: the fake's agent
    version, whose answer to the 0xFF comes first.
    """
    sock = connect(path)
    sock.sendall(SYNC)
    ff_line = FF_ERROR_LINE if version is None else json.dumps(
        {'error': qga_protocol.ff_error(version)}).encode() + b'\n'
    assert read_until(sock, lines(2)) == ff_line + b'\xff{"return": 42}\n'
    return sock


def test_ok_speaks_like_qemu_ga(fake_agent):
    agent = fake_agent('ok', disabled=['guest-get-users'])
    sock = synced(agent.socket)
    assert call(sock, 'guest-ping') == {'return': {}}
    info = call(sock, 'guest-info')['return']
    enabled = {c['name']: c['enabled'] for c in info['supported_commands']}
    assert enabled['guest-ping'] is True and enabled['guest-get-users'] is False
    assert 'guest-get-load' not in enabled      # like qemu-ga 7.2
    assert call(sock, 'guest-get-users')['error'] == {
        'class': 'CommandNotFound', 'desc': 'Command guest-get-users has been disabled'}
    assert call(sock, 'guest-get-load')['error']['desc'] == (
        'The command guest-get-load has not been found')
    fsinfo = call(sock, 'guest-get-fsinfo')['return']
    assert fsinfo[0]['used-bytes'] < fsinfo[0]['total-bytes']
    # streaming parser: no newline needed; the id is echoed
    sock.sendall(b'{"execute": "guest-ping", "id": "x1"}')
    assert json.loads(read_until(sock, lines(1))) == {'return': {}, 'id': 'x1'}
    sock.sendall(b'{"execute": nonsense}\n')
    assert json.loads(read_until(sock, lines(1)))['error']['class'] == 'GenericError'
    sock.close()


def test_ok_reads_proc_files(fake_agent):
    agent = fake_agent('ok')
    with qga_standin.RawClient(agent.socket) as client:
        handle = client.call('guest-file-open', {'path': '/proc/meminfo', 'mode': 'r'})
        data = b''
        while True:
            chunk = client.call('guest-file-read', {'handle': handle, 'count': 64})
            data += base64.b64decode(chunk['buf-b64'])
            if chunk['eof']:
                break
        assert client.call('guest-file-close', {'handle': handle}) == {}
    assert data == fake.PROC_FILES['/proc/meminfo']


def test_one_client_at_a_time(fake_agent):
    agent = fake_agent('ok')
    first = synced(agent.socket)
    second = connect(agent.socket)
    second.sendall(b'{"execute": "guest-ping"}\n')
    assert_silent(second)
    first.close()
    assert json.loads(read_until(second, lines(1))) == {'return': {}}
    second.close()


def test_hang_never_answers(fake_agent):
    agent = fake_agent('hang')
    sock = connect(agent.socket)
    sock.sendall(SYNC)
    assert_silent(sock)
    sock.close()


def test_hang_on_commands_only(fake_agent):
    agent = fake_agent('hang', fault_on='command')
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "guest-ping"}\n')
    assert_silent(sock)
    sock.close()


def test_slow_answers_after_delay(fake_agent):
    agent = fake_agent('slow', delay=0.4, fault_on='command')
    sock = synced(agent.socket)
    start = time.monotonic()
    assert call(sock, 'guest-ping') == {'return': {}}
    assert 0.4 <= time.monotonic() - start < 3
    sock.close()


def test_garbage_is_not_json(fake_agent):
    agent = fake_agent('garbage', seed=7, fault_on='command')
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "guest-ping"}\n')
    data = read_until(sock, lambda d: len(d) >= 16)
    data += read_quiet(sock)
    assert b'\xff' in data
    with pytest.raises(UnicodeDecodeError):
        data.decode('utf-8')
    sock.close()


def test_huge_sends_one_20mb_line(fake_agent):
    agent = fake_agent('huge', fault_on='command')
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "guest-get-fsinfo"}\n')
    data = read_until(sock, lines(1), timeout=20, limit=21 * 1024 * 1024)
    assert len(data) == 20 * 1024 * 1024
    assert data.endswith(b'"}\n') and data.count(b'\n') == 1
    assert len(json.loads(data)['return']) > 20_000_000
    sock.close()


def _rss_kib(pid: int) -> int:
    with open('/proc/%d/status' % pid) as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise AssertionError('no VmRSS for %d' % pid)


def test_endless_streams_without_newline_in_bounded_memory(fake_agent):
    agent = fake_agent('endless', fault_on='command')
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "guest-ping"}\n')
    data = read_until(sock, lambda d: len(d) >= 32 * 1024 * 1024, timeout=30,
                      limit=33 * 1024 * 1024)
    assert b'\n' not in data
    # 32 MB went through; the fake holds only a few chunks at a time.
    assert _rss_kib(agent.pid) < 80 * 1024
    sock.close()
    # still serving after the client left mid-stream
    fresh = synced(agent.socket)
    fresh.close()


def test_stale_sync_replies_come_first(fake_agent):
    agent = fake_agent('stale')
    sock = connect(agent.socket)
    sock.sendall(SYNC)
    data = read_until(sock, lambda d: d.count(b'\n') >= 4)
    assert data == (FF_ERROR_LINE + b'\xff{"return": 43}\n' + b'{"return": {}}\n'
                    + b'\xff{"return": 42}\n')
    assert call(sock, 'guest-get-host-name') == {'return': {'host-name': 'fake-guest'}}
    # the next sync repeats the last command's reply as the stale one
    sock.sendall(SYNC)
    data = read_until(sock, lambda d: d.count(b'\n') >= 4)
    assert b'fake-guest' in data.split(b'\n')[2]
    sock.close()
    # a client that keeps scanning for 0xFF until its id comes back copes
    with qga_standin.RawClient(agent.socket) as client:
        assert client.call('guest-ping') == {}


def test_disconnect_mid_reply(fake_agent):
    agent = fake_agent('disconnect', fault_on='command')
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "guest-info"}\n')
    data = read_until(sock, lambda d: False)     # until EOF
    assert data and not data.endswith(b'\n')
    sock.close()


def test_wrong_types(fake_agent):
    agent = fake_agent('wrong-types')
    sock = synced(agent.socket)
    fsinfo = call(sock, 'guest-get-fsinfo')['return']
    assert fsinfo[0]['used-bytes'] == -1 and fsinfo[0]['total-bytes'] == 'lots'
    assert fsinfo[1]['used-bytes'] > fsinfo[1]['total-bytes']
    assert fsinfo[2]['used-bytes'] != fsinfo[2]['used-bytes']   # NaN
    assert call(sock, 'guest-get-users')['return'] == 'nobody'
    assert call(sock, 'guest-get-cpustats')['return'][0]['user'] == -5
    assert call(sock, 'guest-ping') == {'return': {}}
    sock.close()


def test_frozen_looks_like_qemu_ga_72_frozen_and_thaws_with_its_file(
        fake_agent, short_tmpdir):
    """guest-info disables all but ga_freeze_allowlist (qga/main.c 7.2)."""
    flag = os.path.join(short_tmpdir, 'frozen.flag')
    open(flag, 'w').close()
    agent = fake_agent('frozen', freeze_file=flag)
    sock = synced(agent.socket)
    info = call(sock, 'guest-info')['return']
    enabled = {c['name'] for c in info['supported_commands'] if c['enabled']}
    assert enabled == fake.FROZEN_SAFE & set(fake.DEFAULT_COMMANDS)
    assert call(sock, 'guest-fsfreeze-status') == {'return': 'frozen'}
    assert call(sock, 'guest-get-fsinfo')['error'] == {
        'class': 'CommandNotFound',
        'desc': 'Command guest-get-fsinfo has been disabled: the agent is in '
                'frozen state'}
    os.unlink(flag)
    assert call(sock, 'guest-fsfreeze-status') == {'return': 'thawed'}
    assert call(sock, 'guest-get-fsinfo')['return'][0]['mountpoint'] == '/'
    info = call(sock, 'guest-info')['return']
    assert all(c['enabled'] for c in info['supported_commands'])
    sock.close()


def test_unsolicited_sends_two_foreign_replies_first(fake_agent):
    agent = fake_agent('unsolicited')
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "guest-get-fsinfo", "id": 5}\n')
    first, second, real = (json.loads(line) for line in
                           read_until(sock, lines(3)).splitlines())
    assert 'host-name' in first['return'] and first['id'] != 5
    assert 'host-name' in second['return'] and 'id' not in second
    assert real['id'] == 5 and real['return'][0]['mountpoint'] == '/'
    sock.close()


def test_close_hangs_up_after_each_command_reply(fake_agent):
    agent = fake_agent('close')
    sock = synced(agent.socket)                  # the sync keeps it open
    assert call(sock, 'guest-ping') == {'return': {}}
    assert read_until(sock, lambda d: False) == b''     # then EOF
    sock.close()


def test_surrogates_in_every_string(fake_agent):
    agent = fake_agent('surrogates')
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "guest-get-host-name"}\n')
    raw = read_until(sock, lines(1))
    assert b'"fake-guest\\ud800"' in raw       # JSON-escaped, as qemu-ga would
    osinfo = call(sock, 'guest-get-osinfo')['return']
    assert all(v.endswith('\ud800') for v in osinfo.values())
    sock.close()


def test_invalid_items_sends_many_bad_entries(fake_agent):
    agent = fake_agent('invalid-items', items=500)
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "guest-get-fsinfo"}\n')
    fsinfo = json.loads(read_until(sock, lines(1)))['return']
    assert len(fsinfo) == 500 and all(f['used-bytes'] < 0 for f in fsinfo)
    sock.sendall(b'{"execute": "guest-network-get-interfaces"}\n')
    nics = json.loads(read_until(sock, lines(1)))['return']
    assert len(nics) == 500 and nics[0]['statistics']['tx-bytes'] == 'many'
    sock.close()


def test_restart_drops_connection_after_n_answers(fake_agent):
    agent = fake_agent('restart', after=3)
    sock = synced(agent.socket)                  # answer 1
    assert call(sock, 'guest-ping') == {'return': {}}   # 2
    assert call(sock, 'guest-ping') == {'return': {}}   # 3
    sock.sendall(b'{"execute": "guest-ping"}\n')
    assert read_until(sock, lambda d: False) == b''     # dropped, no reply
    sock.close()
    again = synced(agent.socket)
    assert call(again, 'guest-ping') == {'return': {}}
    again.close()


def test_overlong_request_is_refused(fake_agent):
    agent = fake_agent('ok', max_request=64 * 1024)
    sock = synced(agent.socket)
    sock.sendall(b'{"execute": "' + b'x' * (200 * 1024) + b'"}\n')
    reply = json.loads(read_until(sock, lines(1)))
    assert reply['error']['desc'] == 'JSON parse error, request too long'
    # the rest of that request is dropped: one error, and the next works
    assert call(sock, 'guest-ping') == {'return': {}}
    sock.close()


def test_connection_cap(fake_agent):
    agent = fake_agent('hang', max_connections=2)
    held = [connect(agent.socket), connect(agent.socket)]
    for sock in held:
        sock.sendall(SYNC)
    # The kernel queues connections in order and the fake accepts them in
    # order, so the third is the one over the cap, whatever the timing.
    extra = connect(agent.socket)
    assert read_until(extra, lambda d: False) == b''     # closed at once
    for sock in held + [extra]:
        sock.close()


def test_sigterm_stops_cleanly_with_a_client_attached(fake_agent):
    agent = fake_agent('hang')
    sock = connect(agent.socket)
    sock.sendall(SYNC)
    os.kill(agent.pid, signal.SIGTERM)
    assert agent.proc.wait(5) == 0
    assert not os.path.exists(agent.socket)
    assert read_until(sock, lambda d: False) == b''
    sock.close()
    assert 'Traceback' not in agent.log_text()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match='unknown mode'):
        fake.Options(mode='flaky')


async def test_in_process_api(short_tmpdir):
    path = os.path.join(short_tmpdir, 'inproc.sock')
    async with fake.FakeAgent(path, fake.Options(mode='ok')) as agent:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b'{"execute": "guest-ping"}\n')
        line = await asyncio.wait_for(reader.readline(), 5)
        assert json.loads(line) == {'return': {}}
        writer.close()
        await writer.wait_closed()
        assert agent.connections == 1 and agent.requests == 1
    assert not os.path.exists(path)


@pytest.mark.parametrize('version,framing', [
    ('1.5.0', 'refuse-id'), ('2.5.0', 'refuse-id'), ('2.11.0', 'refuse-id'),
    ('2.12.0', 'ignore-id'), ('3.0.0', 'refuse-id'), ('3.1.0', 'refuse-id'),
    ('4.0.0', 'echo-id'), ('7.2.22', 'echo-id'), ('108.0.2', 'echo-id')])
def test_framing_follows_the_version(version, framing):
    assert fake.framing_of(version) == framing


def test_an_agent_before_2_12_refuses_a_request_id(fake_agent):
    """qemu-ga 2.5's framing: the id refused with QEMU's exact text, no id
    in any reply; the same request without id is answered.
    """
    agent = fake_agent('ok', agent_version='2.5.0')
    sock = synced(agent.socket, '2.5.0')
    sock.sendall(b'{"execute": "guest-ping", "id": 5}\n'
                 b'{"execute": "guest-ping"}\n')
    replies = [json.loads(line) for line in
               read_until(sock, lines(2)).splitlines()]
    assert replies == [
        {'error': {'class': 'GenericError',
                   'desc': "QMP input object member 'id' is unexpected"}},
        {'return': {}}]


def test_a_2_12_agent_takes_a_request_id_and_does_not_echo_it(fake_agent):
    agent = fake_agent('ok', agent_version='2.12.0')
    sock = synced(agent.socket, '2.12.0')
    sock.sendall(b'{"execute": "guest-ping", "id": 5}\n')
    assert json.loads(read_until(sock, lines(1))) == {'return': {}}


def test_a_3_1_agent_refuses_a_request_id_in_the_newer_words(fake_agent):
    """Debian 10's qemu-ga 3.1: 3.0 took back 2.12's acceptance, and the
    refusal reads "QMP input member" since 2.10.
    """
    agent = fake_agent('ok', agent_version='3.1.0')
    sock = synced(agent.socket, '3.1.0')
    sock.sendall(b'{"execute": "guest-ping", "id": 5}\n')
    assert json.loads(read_until(sock, lines(1))) == {'error': {
        'class': 'GenericError',
        'desc': "QMP input member 'id' is unexpected"}}
