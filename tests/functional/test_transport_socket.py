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

"""The socket transport against real qemu-ga and a fault-injecting fake.

Real qemu-ga 7.2 (stand-in guests) for the protocol as it is; the fake
agent (tests/fixtures/agents/fake_agent.py, its own process) for what a real agent does only
when it is broken or hostile: hangs, garbage, huge and endless replies,
stale ids, disconnects mid-reply.  Every read must end within the command
timeout and within the byte cap, with a typed error naming guest and
command, and the transport must recover on the next call.
"""

import asyncio
import os
import socket as socketlib
import time

import pytest

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport_socket
from tests.fixtures.agents.qga_standin import RawClient
from tests.fixtures.agents.qga_standin import StandinGuest

pytestmark = pytest.mark.functional

CAP = 1024 * 1024
#: what a loaded 2-core machine may add to a bound: the claims are "within
#: the timeout" against "never", not a speed
SLACK = 3.0


def transport(path, timeout=1.0, cap=CAP):
    return transport_socket.SocketTransport('g-under-test', path, timeout,
                                            cap)


async def timed(coro):
    start = time.monotonic()
    try:
        result = await coro
        return result, None, time.monotonic() - start
    except errors.QgaError as exc:
        return None, exc, time.monotonic() - start


def test_real_agent_sync_and_commands(short_tmpdir):
    guest = StandinGuest('t', short_tmpdir).start()
    try:
        async def run():
            t = transport(guest.socket)
            assert await t.execute('guest-ping') == {}
            assert t.generation == 1
            assert t.state is transport_socket.State.READY
            info = await t.execute('guest-info')
            assert info['version'].startswith('7.2')
            # an unknown command: typed, and the stream stays in sync
            with pytest.raises(errors.CommandNotSupported) as exc:
                await t.execute('guest-get-load')
            assert exc.value.command == 'guest-get-load'
            assert await t.execute('guest-ping') == {}
            # a blocked (state-changing) command never leaves the client
            with pytest.raises(errors.CommandForbidden):
                await t.execute('guest-shutdown')
            assert t.generation == 1  # no reconnect was needed
            await t.close()
            await t.close()  # idempotent
            assert await t.execute('guest-ping') == {}
            assert t.generation == 2
            await t.close()
        asyncio.run(run())
    finally:
        guest.stop()


def test_real_agent_echoes_ids_and_foreign_replies_are_dropped(short_tmpdir):
    """qemu-ga 7.2 echoes a request's id (return and error alike); the
    transport takes only the reply with its own id.
    """
    guest = StandinGuest('ids', short_tmpdir).start()
    try:
        async def run():
            t = transport(guest.socket)
            assert await t.execute('guest-ping') == {}
            # Replies that belong to nobody: one return, one error, each
            # with an id the transport never used.
            t._writer.write(b'{"execute": "guest-info", "id": "stray-1"}\n'
                            b'{"execute": "guest-nosuch", "id": "stray-2"}\n')
            assert 'host-name' in await t.execute('guest-get-host-name')
            assert t.state is transport_socket.State.READY
            assert t.generation == 1  # routed by id, no resync needed
            await t.close()
        asyncio.run(run())
        with RawClient(guest.socket) as raw:
            raw.sock.sendall(b'{"execute": "guest-ping", "id": "r-1"}\n')
            assert raw.reply() == {'return': {}, 'id': 'r-1'}
            raw.sock.sendall(b'{"execute": "guest-nosuch", "id": 7}\n')
            reply = raw.reply()
            assert reply['id'] == 7 and reply['error']['class'] == 'CommandNotFound'
    finally:
        guest.stop()


@pytest.mark.parametrize('mode,error', [
    ('hang', errors.AgentTimeout),
    ('slow', errors.AgentTimeout),
    ('endless', errors.ProtocolError),
    ('huge', errors.ProtocolError),
    # random bytes without a newline end in the timeout, with one in a
    # JSON error: both are right, and both are bounded
    ('garbage', (errors.ProtocolError, errors.AgentTimeout)),
    ('disconnect', errors.ProtocolError),
])
def test_faulty_agent_fails_typed_and_bounded(fake_agent, mode, error):
    agent = fake_agent(mode, fault_on='command', delay=5.0)

    async def run():
        t = transport(agent.socket, timeout=1.0)
        result, exc, elapsed = await timed(t.execute('guest-get-fsinfo'))
        await t.close()
        return result, exc, elapsed
    result, exc, elapsed = asyncio.run(run())
    assert isinstance(exc, error), (mode, result, exc)
    assert exc.guest == 'g-under-test' and exc.command == 'guest-get-fsinfo'
    assert elapsed < 1.0 + SLACK, elapsed


@pytest.mark.parametrize('mode', ['hang', 'garbage', 'endless', 'huge'])
def test_faulty_handshake_is_bounded(fake_agent, mode):
    agent = fake_agent(mode, fault_on='any')

    async def run():
        t = transport(agent.socket, timeout=1.0)
        result = await timed(t.execute('guest-ping'))
        await t.close()
        return result
    _result, exc, elapsed = asyncio.run(run())
    assert isinstance(exc, (errors.AgentTimeout, errors.ProtocolError))
    assert elapsed < 1.0 + SLACK


def test_byte_cap_applies_even_within_the_timeout(fake_agent):
    agent = fake_agent('huge', fault_on='command', size=5 * 1024 * 1024)

    async def run():
        t = transport(agent.socket, timeout=30.0, cap=64 * 1024)
        result = await timed(t.execute('guest-get-fsinfo'))
        state = t.state
        await t.close()
        return result, state
    (_r, exc, elapsed), state = asyncio.run(run())
    assert isinstance(exc, errors.ProtocolError)
    assert 'longer than 65536 bytes' in str(exc)
    assert state is transport_socket.State.DISCONNECTED
    assert elapsed < 5


def test_stale_replies_and_wrong_sync_ids_are_skipped(fake_agent):
    agent = fake_agent('stale')

    async def run():
        t = transport(agent.socket, timeout=2.0)
        first = await t.execute('guest-get-host-name')
        await t.close()  # reconnect: the fake now replays stale data
        second = await t.execute('guest-ping')
        third = await t.execute('guest-get-host-name')
        await t.close()
        return first, second, third
    first, second, third = asyncio.run(run())
    assert 'host-name' in first
    assert second == {}  # not the stale host-name reply
    assert 'host-name' in third


def test_late_reply_after_timeout_is_not_taken_for_the_next(fake_agent):
    agent = fake_agent('slow', fault_on='command', delay=0.6)

    async def run():
        t = transport(agent.socket, timeout=0.3)
        _r, exc, _e = await timed(t.execute('guest-get-host-name'))
        assert isinstance(exc, errors.AgentTimeout)
        assert t.state is transport_socket.State.UNSYNCED
        # the fake is slow for every command: give this one time enough
        reply = await t.execute('guest-ping', timeout=3.0)
        await t.close()
        return reply
    assert asyncio.run(run()) == {}


def test_agent_restart_mid_session_reconnects(fake_agent):
    agent = fake_agent('restart', after=3)

    async def run():
        t = transport(agent.socket, timeout=1.0)
        outcomes = []
        for _ in range(8):
            try:
                outcomes.append(await t.execute('guest-ping'))
            except errors.QgaError as exc:
                outcomes.append(exc)
        generation = t.generation
        await t.close()
        return outcomes, generation
    outcomes, generation = asyncio.run(run())
    # The connection it dropped was open before the call: reopened,
    # resynced and the ping resent within the same call.
    assert outcomes == [{}] * 8
    assert generation >= 2


def test_absent_and_refused_sockets(short_tmpdir):
    stale = os.path.join(short_tmpdir, 'stale.sock')
    s = socketlib.socket(socketlib.AF_UNIX)
    s.bind(stale)
    s.close()  # a socket file nobody listens on: ECONNREFUSED

    async def run():
        out = []
        for path in (os.path.join(short_tmpdir, 'none.sock'), stale):
            out.append(await timed(transport(path).execute('guest-ping')))
        return out
    for _r, exc, elapsed in asyncio.run(run()):
        assert isinstance(exc, errors.AgentNotConnected)
        assert elapsed < SLACK


def test_qemu_qmp_cannot_sync(short_tmpdir):
    """Why the transport does its own framing (see its module docstring).

    QEMU's qemu.qmp client, configured for qga, handles plain commands but
    loses the connection on the 0xFF sentinel of guest-sync-delimited.
    """
    from qemu.qmp import QMPClient
    guest = StandinGuest('qmp', short_tmpdir).start()
    try:
        async def run():
            client = QMPClient('qga')
            client.await_greeting = False
            client.negotiate = False
            await client.connect(guest.socket)
            try:
                assert await asyncio.wait_for(
                    client.execute('guest-ping'), 2) == {}
                with pytest.raises(Exception) as exc:
                    await asyncio.wait_for(client.execute(
                        'guest-sync-delimited', {'id': 4242}), 2)
                return exc.value
            finally:
                try:
                    await asyncio.wait_for(client.disconnect(), 2)
                except Exception:
                    pass  # its reader already died on the 0xFF byte
        exc = asyncio.run(run())
        assert type(exc).__name__ in ('ExecInterruptedError',
                                      'UnicodeDecodeError',
                                      'ConnectionResetError')
    finally:
        guest.stop()


def test_agent_closing_after_every_reply_is_reconnected_and_resynced(fake_agent):
    """Issue 9: an agent that hangs up after each reply gave up=1 and no
    data; every command now gets through on a fresh, resynced connection.
    """
    agent = fake_agent('close')

    async def run():
        t = transport(agent.socket, timeout=1.0)
        replies = [await t.execute(c) for c in (
            'guest-ping', 'guest-get-host-name', 'guest-get-fsinfo', 'guest-ping')]
        generation = t.generation
        await t.close()
        return replies, generation
    replies, generation = asyncio.run(run())
    assert replies[0] == {} and replies[3] == {}
    assert replies[1] == {'host-name': 'fake-guest'}
    assert replies[2][0]['mountpoint'] == '/'
    assert generation == 4  # one connection (and one sync) per command


def test_unsolicited_replies_never_shift_the_data(fake_agent):
    """Two foreign replies (another command's result, with a wrong id and
    with none) come before every real one: each command gets its own.
    """
    agent = fake_agent('unsolicited')

    async def run():
        t = transport(agent.socket, timeout=1.0)
        replies = {c: await t.execute(c) for c in (
            'guest-ping', 'guest-get-fsinfo', 'guest-get-osinfo',
            'guest-get-host-name', 'guest-get-vcpus')}
        generation = t.generation
        await t.close()
        return replies, generation
    replies, generation = asyncio.run(run())
    assert replies['guest-ping'] == {}
    assert replies['guest-get-fsinfo'][0]['mountpoint'] == '/'
    assert replies['guest-get-osinfo']['id'] == 'debian'
    assert replies['guest-get-host-name'] == {'host-name': 'fake-guest'}
    assert replies['guest-get-vcpus'][0]['logical-id'] == 0
    assert generation == 1  # routed by id, no resync
