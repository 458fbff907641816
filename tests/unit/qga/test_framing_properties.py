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

"""Property tests of the socket transport's framing, over a real unix socket.

The agent end is a scripted asyncio server on a real unix socket (no
mock): it answers the transport's ``guest-sync-delimited`` and command
requests with byte streams that hypothesis builds -- arbitrary bytes
before the 0xFF sentinel, foreign replies with other ids, arbitrary JSON
results, arbitrary garbage -- and writes them cut at arbitrary points,
each piece flushed on its own so that the transport's reader sees every
possible split (inside a UTF-8 sequence, between 0xFF and its reply,
inside a number...).

The properties:

* whatever precedes the sentinel, the transport gets in sync and returns
  the right result;
* replies carrying another id are never taken for the command's;
* for *any* byte stream, ``execute`` returns or raises a ``QgaError``
  (never anything else), within its timeout.
"""

import asyncio
import json
import os
import tempfile
import time

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport_socket

MAX_REPLY = 4096
#: generous: these exchanges must succeed, even on a loaded machine
TIMEOUT = 5.0
#: the timeout where most streams end in one
SHORT = 0.1
#: what the loop may add to a timeout on a shared 2-core machine
SLACK = 1.0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2 ** 63,
                                            max_value=2 ** 64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
#: ids a foreign reply may carry (never equal to a small positive counter)
foreign_ids = st.one_of(st.integers(min_value=1000), st.integers(max_value=0),
                        st.text(max_size=5), st.none(),
                        st.lists(st.integers(), max_size=2))
cuts = st.lists(st.integers(min_value=1, max_value=64), max_size=12)
SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut into pieces of ``sizes`` (the rest as the last piece)."""
    pieces, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        pieces.append(data[pos:pos + size])
        pos += size
    if pos < len(data):
        pieces.append(data[pos:])
    return pieces


class ScriptedAgent:
    """A unix-socket agent whose answers are given as functions.

    :param on_sync: sync id -> bytes to send for a ``guest-sync-delimited``
    :param on_command: request dict -> bytes to send for any other request
    :param close_after: close the connection after this many answers
    :param delay: request dict -> seconds to wait before answering it
    """

    def __init__(self, on_sync, on_command, pieces, close_after=None,
                 delay=None):
        self.on_sync = on_sync
        self.on_command = on_command
        self.pieces = pieces
        self.close_after = close_after
        self.delay = delay
        self.requests = []

    async def handle(self, reader, writer):
        buf = b''
        answered = 0
        try:
            while self.close_after is None or answered < self.close_after:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                buf += chunk
                while b'\n' in buf:
                    line, buf = buf.split(b'\n', 1)
                    request = json.loads(line.lstrip(b'\xff'))
                    self.requests.append(request)
                    if self.delay is not None:
                        await asyncio.sleep(self.delay(request))
                    if request['execute'] == 'guest-sync-delimited':
                        data = self.on_sync(request['arguments']['id'])
                    else:
                        data = self.on_command(request)
                    for piece in split(data, self.pieces):
                        writer.write(piece)
                        await writer.drain()
                        await asyncio.sleep(0)
                    answered += 1
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def exchange(agent: ScriptedAgent, commands=('guest-ping',),
                   timeout=TIMEOUT):
    """Run ``commands`` through a SocketTransport against ``agent``.

    :returns: list of (result or exception, seconds taken)
    """
    with tempfile.TemporaryDirectory(prefix='qgaprop') as tmp:
        path = os.path.join(tmp, 'agent.sock')
        server = await asyncio.start_unix_server(agent.handle, path)
        transport = transport_socket.SocketTransport(
            'prop-guest', path, timeout, MAX_REPLY)
        outcomes = []
        try:
            for command in commands:
                start = time.monotonic()
                try:
                    outcome = await transport.execute(command)
                except Exception as exc:  # the property: which ones
                    outcome = exc
                outcomes.append((outcome, time.monotonic() - start))
        finally:
            await transport.close()
            server.close()
            await server.wait_closed()
        return outcomes


def sync_reply(sync_id, prefix=b''):
    return prefix + b'\xff' + json.dumps({'return': sync_id}).encode() + b'\n'


def reply(request, value):
    return json.dumps({'return': value, 'id': request['id']}).encode() + b'\n'


@SETTINGS
@given(prefix=st.binary(max_size=MAX_REPLY // 2), value=json_values,
       pieces=cuts)
def test_any_bytes_before_the_sentinel_are_skipped(prefix, value, pieces):
    agent = ScriptedAgent(lambda sid: sync_reply(sid, prefix),
                          lambda req: reply(req, value), pieces)
    [(outcome, _took)] = asyncio.run(exchange(agent))
    assert outcome == value


@SETTINGS
@given(stale=st.lists(json_values, max_size=4),
       foreign=st.lists(st.tuples(foreign_ids, json_values), max_size=5),
       value=json_values, pieces=cuts)
def test_replies_with_another_id_are_never_taken(stale, foreign, value,
                                                 pieces):
    def on_sync(sync_id):
        # stale sync replies (wrong ids) and noise lines after the sentinel
        noise = b''.join(json.dumps({'return': v}).encode() + b'\n'
                         for v in stale if v != sync_id)
        return b'\xff' + noise + sync_reply(sync_id)

    def on_command(request):
        noise = b''.join(
            json.dumps({'return': v, 'id': i}).encode() + b'\n'
            for i, v in foreign
            if not (i == request['id']))
        return noise + reply(request, value)

    agent = ScriptedAgent(on_sync, on_command, pieces)
    outcomes = asyncio.run(exchange(agent, ('guest-ping', 'guest-info')))
    for outcome, _took in outcomes:
        assert outcome == value


@settings(SETTINGS, max_examples=50)
@given(stream=st.binary(max_size=3 * MAX_REPLY),
       sync_ok=st.booleans(), close=st.booleans(), pieces=cuts)
def test_any_byte_stream_is_a_result_or_a_qga_error_in_time(stream, sync_ok,
                                                            close, pieces):
    agent = ScriptedAgent(
        (lambda sid: sync_reply(sid)) if sync_ok else (lambda sid: stream),
        lambda req: stream, pieces, close_after=(2 if close else None))
    # A short timeout: most streams end in one (no newline, no sentinel).
    outcomes = asyncio.run(exchange(agent, ('guest-ping', 'guest-ping'),
                                    timeout=SHORT))
    for outcome, took in outcomes:
        assert not isinstance(outcome, Exception) or isinstance(
            outcome, errors.QgaError), repr(outcome)
        # each command: its own timeout, at most
        assert took < SHORT + SLACK, took
        if isinstance(outcome, errors.QgaError):
            # errors that reach the log are bounded, whatever was sent
            assert len(str(outcome)) < 1000


#: long strings, up to what fits in one reply
long_text = st.text(min_size=500, max_size=MAX_REPLY // 4)


@SETTINGS
@given(error=json_values | st.lists(long_text, max_size=3)
       | st.dictionaries(st.sampled_from(['class', 'desc', 'data']),
                         json_values | long_text, max_size=3),
       pieces=cuts)
def test_any_error_object_is_a_typed_bounded_error(error, pieces):
    agent = ScriptedAgent(
        lambda sid: sync_reply(sid),
        lambda req: json.dumps({'error': error, 'id': req['id']}).encode()
        + b'\n', pieces)
    [(outcome, _took)] = asyncio.run(exchange(agent))
    assert isinstance(outcome, errors.QgaError), repr(outcome)
    assert len(str(outcome)) < 1000


# -- agents before 3.0: no ids (module docstring of transport_socket) ---------

#: qemu-ga up to 2.9 (``qmp_dispatch_check_obj`` in ``qapi/qmp-dispatch.c``,
#: ``QERR_QMP_EXTRA_MEMBER``) answers a request with a top-level id thus;
#: 2.10, 2.11, 3.0 and 3.1 say "QMP input member 'id' is unexpected"
ID_REFUSAL = (b'{"error": {"class": "GenericError", "desc": '
              b'"QMP input object member \'id\' is unexpected"}}\n')
ID_REFUSAL_2_10 = ID_REFUSAL.replace(b'input object member', b'input member')


def old_agent(value, accepts_ids, refusal=ID_REFUSAL):
    """A scripted agent that frames as qemu-ga before 4.0 does: ids
    refused (up to 2.11, 3.0, 3.1) or accepted and not echoed
    (``accepts_ids``: 2.12), replies in order and never with an id.
    """
    def on_command(request):
        if 'id' in request and not accepts_ids:
            return refusal
        if request['execute'] == 'guest-sync':
            return json.dumps(
                {'return': request['arguments']['id']}).encode() + b'\n'
        return json.dumps({'return': value}).encode() + b'\n'
    return on_command


@SETTINGS
@given(value=json_values, accepts_ids=st.booleans(),
       refusal=st.sampled_from([ID_REFUSAL, ID_REFUSAL_2_10]), pieces=cuts)
def test_an_agent_before_4_0_is_answered_in_order(value, accepts_ids,
                                                  refusal, pieces):
    agent = ScriptedAgent(sync_reply, old_agent(value, accepts_ids, refusal),
                          pieces)
    outcomes = asyncio.run(exchange(
        agent, ('guest-ping', 'guest-info', 'guest-get-fsinfo')))
    assert [outcome for outcome, _took in outcomes] == [value] * 3
    # only the framing probe carried an id; every command went without
    commands = [r for r in agent.requests if not r['execute'].startswith(
        'guest-sync')]
    assert len(commands) == 3
    assert not any('id' in r for r in commands)


def test_the_exact_2x_refusal_selects_order_framing():
    """The refusal text of qemu-ga 1.5-2.9, byte for byte, as the reply to
    the framing probe: the connection is framed by order from then on.
    """
    async def run():
        agent = ScriptedAgent(sync_reply, old_agent({}, False), [])
        with tempfile.TemporaryDirectory(prefix='qgaprop') as tmp:
            path = os.path.join(tmp, 'agent.sock')
            server = await asyncio.start_unix_server(agent.handle, path)
            t = transport_socket.SocketTransport('old', path, TIMEOUT,
                                                 MAX_REPLY)
            try:
                result = await t.execute('guest-ping')
                return result, t.framing, agent.requests
            finally:
                await t.close()
                server.close()
                await server.wait_closed()
    result, framing, requests = asyncio.run(run())
    assert result == {}
    assert framing is transport_socket.Framing.ORDER
    assert transport_socket.is_id_refusal(json.loads(ID_REFUSAL))
    assert [r['execute'] for r in requests] == [
        'guest-sync-delimited', 'guest-sync', 'guest-ping']
    assert 'id' in requests[1] and 'id' not in requests[2]


def test_a_late_reply_never_shifts_the_order_framing():
    """Order framing: the first command times out, its reply comes late;
    the next command resyncs first, so it gets its own reply.
    """
    state = {'n': 0}

    def on_command(request):
        if request['execute'] == 'guest-sync':
            return ID_REFUSAL if 'id' in request else b''
        state['n'] += 1
        return json.dumps({'return': request['execute']}).encode() + b'\n'

    async def run():
        agent = ScriptedAgent(
            sync_reply, on_command, [],
            delay=lambda r: SHORT * 3 if r['execute'] == 'guest-get-fsinfo'
            else 0)  # its reply comes late
        with tempfile.TemporaryDirectory(prefix='qgaprop') as tmp:
            path = os.path.join(tmp, 'agent.sock')
            server = await asyncio.start_unix_server(agent.handle, path)
            t = transport_socket.SocketTransport('old', path, TIMEOUT,
                                                 MAX_REPLY)
            try:
                first = await t.execute('guest-ping')
                try:
                    await t.execute('guest-get-fsinfo', timeout=SHORT)
                    late = None
                except errors.AgentTimeout as exc:
                    late = exc
                await asyncio.sleep(SHORT * 4)  # the late reply is queued
                after = await t.execute('guest-info')
                return first, late, after, t.framing
            finally:
                await t.close()
                server.close()
                await server.wait_closed()
    first, late, after, framing = asyncio.run(run())
    assert framing is transport_socket.Framing.ORDER
    assert first == 'guest-ping'
    assert isinstance(late, errors.AgentTimeout)
    assert after == 'guest-info'
