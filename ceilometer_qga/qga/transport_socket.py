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

"""Talk to a guest agent directly over a unix socket the poller owns.

This is the transport for the dedicated monitor channel
(``org.openstack.monitor.0``): QEMU listens on the host end, libvirt does not
connect to it, and a second qemu-ga in the guest serves it.  It also drives
``qemu-ga -m unix-listen`` stand-in guests in tests and the demo.

Why not QEMU's ``qemu.qmp`` library
-----------------------------------
A stock ``QMPClient`` (``await_greeting=False, negotiate=False``) handles
plain commands but not ``guest-sync-delimited``: its reader decodes every
line as UTF-8, so the 0xFF sentinel before the sync reply kills the reader
task (``tests/functional/test_transport_socket.py``,
``test_qemu_qmp_cannot_sync``).  A subclass doing the handshake in
``_establish_session`` works, but its reader and writer tasks and queues
cost more task switches per command than this framing, and it routes
replies only by id, which agents before 4.0 do not echo (below).  So the
framing is ours: every read bounded in time and bytes.

Two framings: ids, or order
---------------------------
qemu-ga 4.0 and later echo a request's top-level ``id`` in the reply,
``return`` and ``error`` alike (QEMU commit 4eaca8de26 "qmp: common 'id'
handling & make QGA conform to QMP spec", in 4.0.0).  Earlier agents
dispatch the whole request through ``qapi/qmp-dispatch.c``, whose
``qmp_dispatch_check_obj`` refuses every member but ``execute`` and
``arguments`` (``{"error": {"class": "GenericError", "desc": "QMP input
object member 'id' is unexpected"}}`` up to 2.9, "QMP input member 'id' is
unexpected" from 2.10; no id in the reply).  2.12 let the member through
without echoing it (commit cf869d5317, the out-of-band work), and 3.0 took
that back (commit 0fa39d0b03), so 3.0 and 3.1 refuse it again.  Only the
QMP monitor (``monitor.c``) answered with the id before 4.0.  libvirt and
Proxmox never send qga a top-level id: they sync and read replies in
order.

The framing is learnt once per connection, in the same write as the
handshake: after ``guest-sync-delimited`` the transport sends a
``guest-sync`` whose argument and top-level ``id`` are one fresh random
number (:meth:`SocketTransport._learn_framing`).  Its reply says it all:

* it carries the id: :attr:`Framing.IDS`; requests carry ids and a reply
  with another id, or none, belongs to nobody and is dropped;
* the "member 'id' is unexpected" refusal, or the random number returned
  without id: :attr:`Framing.ORDER`; requests carry no id and each reply
  is taken for the oldest outstanding request, which is safe because the
  stream is resynchronised after every timeout and protocol error, so that
  a late reply can never be taken for the next command's;
* anything else (a stray reply of a misbehaving agent) is dropped, within
  the byte cap and the deadline, like any foreign reply.

Batches
-------
:meth:`SocketTransport._execute_batch` writes several requests at once and
reads their replies in turn, in either framing: qemu-ga parses its input as
a stream and answers in order (checked against qemu-ga 7.2 and 5.2:
``tests/functional/test_round_trips.py``, the version matrix).

States
------
``DISCONNECTED`` → (connect) → ``UNSYNCED`` → (0xFF + ``guest-sync-
delimited`` with a random id: everything up to the 0xFF sentinel and every
reply without our id is discarded; the framing probe on a new connection) →
``READY``, which means "in sync, nothing outstanding".  Sending a command
moves to ``UNSYNCED`` until its reply is read, so a timeout or a cancelled
sweep leaves it there: the connection stays open (closing it with a reply
unread makes qemu-ga 7.2 in unix-listen mode exit) and the next command
first resynchronises, which drops the late reply.  A protocol error
(garbage, reply over the byte cap, EOF) closes the connection:
``DISCONNECTED``.  When the agent has closed a connection that an earlier
call opened (it hangs up after every reply, or restarted), the command is
sent again once on a new, resynced connection, within the same deadline.
Every transition is logged at debug level (:meth:`SocketTransport.
_set_state`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import enum
import json
import random
from typing import Any

from oslo_log import log as logging

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import replies
from ceilometer_qga.qga import transport

LOG = logging.getLogger(__name__)

SENTINEL = b'\xff'
#: asyncio.timeout where Python has it (3.11+)
_TIMEOUT = getattr(asyncio, 'timeout', None)
_READ_CHUNK = 65536
_CLOSE_TIMEOUT = 1.0
#: what an agent before 4.0 (but 2.12) answers a request with a top-level
#: id ends with (``qmp_dispatch_check_obj`` in ``qapi/qmp-dispatch.c``:
#: "QMP input object member 'id' is unexpected" up to 2.9, "QMP input
#: member 'id' is unexpected" from 2.10)
ID_REFUSAL = "member 'id' is unexpected"


class _PeerClosed(errors.ProtocolError):
    """The agent closed the connection (EOF)."""


class _ConnectionLost(errors.AgentNotConnected):
    """Writing or reading failed: the agent closed or reset it."""


class State(enum.Enum):
    """Connection state of a :class:`SocketTransport`."""

    DISCONNECTED = 'disconnected'
    UNSYNCED = 'unsynced'
    READY = 'ready'


class Framing(enum.Enum):
    """How replies are matched to requests on one connection."""

    #: not learnt yet (a new connection)
    UNKNOWN = 'unknown'
    #: the agent echoes ids (qemu-ga 4.0 and later)
    IDS = 'ids'
    #: the agent refuses or ignores ids (before 4.0): replies in order
    ORDER = 'order'


def is_id_refusal(reply: dict[str, Any]) -> bool:
    """Whether ``reply`` is an old agent's refusal of a top-level id."""
    error = reply.get('error')
    return ('id' not in reply and isinstance(error, dict)
            and isinstance(error.get('desc'), str)
            and ID_REFUSAL in error['desc'])


class SocketTransport(transport.Transport):
    """qga over a unix stream socket, framed by hand (see module docstring).

    :param guest: label used in errors and logs (instance uuid)
    :param path: the host-side unix socket of the channel
    :param default_timeout: seconds per command when the caller gives none
    :param max_reply_bytes: longest accepted reply line, sentinel included
    """

    kind = 'socket'
    pipelined = True

    def __init__(self, guest: str, path: str, default_timeout: float,
                 max_reply_bytes: int) -> None:
        super().__init__(guest, default_timeout)
        self.path = path
        self.max_reply_bytes = max_reply_bytes
        self.state = State.DISCONNECTED
        self.framing = Framing.UNKNOWN
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buf = bytearray()
        self._random = random.SystemRandom()
        #: id of the last request sent on this connection
        self._next_id = 0

    # -- upper half: what callers await --------------------------------------

    async def _execute(self, command: str, arguments: dict[str, Any] | None,
                       timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # A connection opened by an earlier call that the agent has
            # closed since (one that hangs up after every reply, or
            # restarted) is reopened, resynced and the command resent,
            # once: every command is read-only, so sending it twice is
            # harmless.  A connection opened by this call is not retried.
            reused = self.state is not State.DISCONNECTED
            try:
                await self._ensure_ready(command, deadline)
                [reply] = await self._exchange([(command, arguments)],
                                               lambda: deadline)
                break
            except errors.AgentTimeout:
                raise  # keep the connection open (see the module docstring)
            except (_PeerClosed, _ConnectionLost):
                await self.close()
                if not reused:
                    raise
            except errors.QgaError:
                await self.close()
                raise
        try:
            return replies.value(self.guest, command, reply)
        except errors.ProtocolError:
            await self.close()  # neither return nor error: out of step
            raise

    async def _execute_batch(self, requests: Sequence[transport.Request],
                             timeout: float) -> list[Any]:
        """Pipelined: every request in one write, then the replies in turn.

        A batch costs one write and as few reads as the replies allow
        instead of one round trip each.  Each reply gets ``timeout`` from
        the one before it, as one command at a time would.  A timeout keeps
        the connection (UNSYNCED, resynced by the next command, as in
        :meth:`_execute`).  An agent that hangs up after every reply, or
        restarted, answers only part of a batch on a connection opened
        earlier: the rest are sent one at a time, each reconnecting once as
        :meth:`_execute` does.
        """
        loop = asyncio.get_running_loop()
        reused = self.state is not State.DISCONNECTED
        results: list[Any] = []
        try:
            await self._ensure_ready(requests[0][0], loop.time() + timeout)
            await self._exchange(requests, lambda: loop.time() + timeout,
                                 results)
            return results
        except errors.AgentTimeout as exc:
            return results + [exc] * (len(requests) - len(results))
        except (_PeerClosed, _ConnectionLost) as exc:
            await self.close()
            if not (reused or results):
                return [exc] * len(requests)
            return results + await super()._execute_batch(
                requests[len(results):], timeout)
        except errors.QgaError as exc:
            await self.close()
            return results + [exc] * (len(requests) - len(results))

    async def close(self) -> None:
        """Close the socket; safe to call at any time, more than once."""
        writer, self._writer, self._reader = self._writer, None, None
        self._buf.clear()
        self._set_state(State.DISCONNECTED)
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass  # the peer is gone or stuck; the fd is closed either way

    # -- the protocol ---------------------------------------------------------

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            LOG.debug('guest %s: socket transport %s -> %s (framing %s)',
                      self.guest, self.state.value, state.value,
                      self.framing.value)
            self.state = state

    async def _ensure_ready(self, command: str, deadline: float) -> None:
        """Connect, synchronise and learn the framing, as far as needed."""
        if self.state is State.DISCONNECTED:
            await self._connect(command, deadline)
        if self.state is not State.READY:
            await self._sync(command, deadline)

    async def _exchange(self, requests: Sequence[transport.Request],
                        deadline_of_next: Any,
                        results: list[Any] | None = None) -> list[Any]:
        """Send ``requests`` in one write; their replies, in order.

        Each reply is the request's result or the agent's typed error
        (:func:`~ceilometer_qga.qga.replies.outcome`), appended to
        ``results`` as it comes so that a caller sees what was answered
        before a failure.  For :meth:`_execute` the raw reply object is
        kept instead, decoded by the caller.
        """
        raw = results is None
        results = [] if results is None else results
        ids = self.framing is Framing.IDS
        first = self._next_id + 1
        self._next_id += len(requests)
        # Until its reply is read a request is outstanding: a timeout or a
        # cancelled sweep leaves the stream UNSYNCED, and the next command
        # resyncs first, which discards the late reply.
        self._set_state(State.UNSYNCED)
        await self._send(b''.join(
            _request(name, arguments, first + index if ids else None)
            for index, (name, arguments) in enumerate(requests)),
            requests[0][0])
        for index, (command, _) in enumerate(requests):
            reply = await self._reply_to(command, first + index,
                                         deadline_of_next())
            results.append(reply if raw
                           else replies.outcome(self.guest, command, reply))
        self._set_state(State.READY)
        return results

    async def _connect(self, command: str, deadline: float) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.path),
                self._remaining(command, deadline))
        except asyncio.TimeoutError:
            raise errors.AgentTimeout(self.guest, command,
                                      'connect to %s timed out' % self.path)
        except OSError as exc:
            raise errors.AgentNotConnected(
                self.guest, command, 'cannot connect to %s: %s'
                % (self.path, exc.strerror or exc))
        self._buf.clear()
        self._next_id = 0
        # A new connection may reach another agent (restarted, upgraded).
        self.framing = Framing.UNKNOWN
        self._set_state(State.UNSYNCED)

    async def _sync(self, command: str, deadline: float) -> None:
        """0xFF + guest-sync-delimited; skip to our id (stale replies out).

        On a connection whose framing is not known yet the framing probe
        goes out in the same write and is read right after.
        """
        sync_id = self._random.randrange(1, 2 ** 53)
        request = {'execute': 'guest-sync-delimited',
                   'arguments': {'id': sync_id}}
        data = SENTINEL + json.dumps(request).encode() + b'\n'
        probe_id = None
        if self.framing is Framing.UNKNOWN:
            probe_id = self._random.randrange(1, 2 ** 53)
            data += json.dumps({'execute': 'guest-sync', 'id': probe_id,
                                'arguments': {'id': probe_id}}).encode() + b'\n'
        await self._send(data, command)
        await self._read_sync_reply(command, sync_id, deadline)
        if probe_id is not None:
            await self._learn_framing(command, probe_id, deadline)
        self._set_state(State.READY)
        self.generation += 1

    async def _read_sync_reply(self, command: str, sync_id: int,
                               deadline: float) -> None:
        while True:
            await self._skip_to_sentinel(command, deadline)
            while True:
                line = await self._read_line(command, deadline,
                                             stop_at_sentinel=True)
                if line is None:
                    break  # another sentinel: a newer sync reply follows
                try:
                    reply = json.loads(line)
                except (ValueError, RecursionError):
                    continue  # noise after the sentinel: keep looking
                if isinstance(reply, dict) and reply.get('return') == sync_id:
                    return

    async def _learn_framing(self, command: str, probe_id: int,
                             deadline: float) -> None:
        """Read the probe's reply and set :attr:`framing` (module docstring)."""
        dropped = 0
        while True:
            line = await self._read_line(command, deadline)
            reply = replies.decode(self.guest, command, line)
            if reply.get('id') == probe_id:
                self.framing = Framing.IDS
            elif 'id' not in reply and (is_id_refusal(reply)
                                        or reply.get('return') == probe_id):
                self.framing = Framing.ORDER
            else:
                dropped += len(line or b'')
                if dropped > self.max_reply_bytes:
                    raise errors.ProtocolError(
                        self.guest, command,
                        'no reply to the framing probe within %d bytes'
                        % self.max_reply_bytes)
                continue
            LOG.debug('guest %s: agent framing is %s', self.guest,
                      self.framing.value)
            return

    async def _reply_to(self, command: str, request_id: int,
                        deadline: float) -> dict[str, Any]:
        """The reply to the request ``request_id``.

        In :attr:`Framing.ORDER` it is the next reply.  In
        :attr:`Framing.IDS` it is the reply carrying ``request_id``: one
        with another id, or without id, belongs to nobody (qemu-ga leaves
        the id out only when it could not parse the input, and our requests
        are valid JSON) and is dropped; taking it would shift another
        command's result onto this one.  Dropped replies count against the
        byte cap like the rest of the stream.
        """
        dropped = 0
        while True:
            line = await self._read_line(command, deadline)
            reply = replies.decode(self.guest, command, line)
            if self.framing is Framing.ORDER or reply.get('id') == request_id:
                return reply
            dropped += len(line or b'')
            if dropped > self.max_reply_bytes:
                raise errors.ProtocolError(
                    self.guest, command,
                    'no reply with id %d within %d bytes'
                    % (request_id, self.max_reply_bytes))

    # -- bottom half: bytes on the wire ---------------------------------------

    async def _send(self, data: bytes, command: str) -> None:
        assert self._writer is not None
        try:
            self._writer.write(data)
            # No drain(): a guest that does not read must not block us;
            # the kernel buffer takes our few hundred bytes.
        except OSError as exc:
            raise _ConnectionLost(self.guest, command, 'send failed: %s' % exc)

    async def _fill(self, command: str, deadline: float) -> None:
        assert self._reader is not None
        try:
            chunk = await _read_within(self._reader,
                                       self._remaining(command, deadline))
        except asyncio.TimeoutError:
            raise errors.AgentTimeout(self.guest, command,
                                      'no reply within the timeout')
        except OSError as exc:
            raise _ConnectionLost(self.guest, command, 'read failed: %s' % exc)
        if not chunk:
            raise _PeerClosed(self.guest, command,
                              'agent closed the connection')
        self._buf += chunk

    async def _skip_to_sentinel(self, command: str, deadline: float) -> None:
        skipped = 0
        while True:
            pos = self._buf.find(SENTINEL)
            if pos >= 0:
                del self._buf[:pos + 1]
                return
            skipped += len(self._buf)
            self._buf.clear()
            if skipped > self.max_reply_bytes:
                raise errors.ProtocolError(
                    self.guest, command,
                    'no sync sentinel within %d bytes' % self.max_reply_bytes)
            await self._fill(command, deadline)

    async def _read_line(self, command: str, deadline: float,
                         stop_at_sentinel: bool = False) -> bytes | None:
        """Return one line without its newline, bounded in bytes and time.

        With ``stop_at_sentinel``, return None when a 0xFF comes first (the
        sentinel stays in the buffer for :meth:`_skip_to_sentinel`).
        """
        while True:
            newline = self._buf.find(b'\n')
            if stop_at_sentinel:
                sentinel = self._buf.find(SENTINEL)
                if sentinel >= 0 and (newline < 0 or sentinel < newline):
                    del self._buf[:sentinel]
                    return None
            if newline >= 0:
                line = bytes(self._buf[:newline])
                del self._buf[:newline + 1]
                return line
            if len(self._buf) > self.max_reply_bytes:
                raise errors.ProtocolError(
                    self.guest, command,
                    'reply longer than %d bytes' % self.max_reply_bytes)
            await self._fill(command, deadline)

    def _remaining(self, command: str, deadline: float) -> float:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise errors.AgentTimeout(self.guest, command,
                                      'no reply within the timeout')
        return left


def _request(command: str, arguments: dict[str, Any] | None,
             request_id: int | None) -> bytes:
    """One request line, with a top-level id unless ``request_id`` is None.

    Without arguments (most commands) it is formatted directly: command
    names come from the read-only allow-list (:mod:`ceilometer_qga.qga.
    policy`), plain ASCII without quotes, and json.dumps of the dict cost
    more than the rest of sending it.
    """
    if arguments:
        request: dict[str, Any] = {'execute': command, 'arguments': arguments}
        if request_id is not None:
            request['id'] = request_id
        return json.dumps(request).encode() + b'\n'
    if request_id is None:
        return b'{"execute": "%s"}\n' % command.encode('ascii')
    return b'{"execute": "%s", "id": %d}\n' % (
        command.encode('ascii'), request_id)


async def _read_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """One ``read()`` of up to ``_READ_CHUNK`` bytes, bounded in time.

    :raises asyncio.TimeoutError: when nothing came within ``seconds``.
    """
    if _TIMEOUT is None:
        return await asyncio.wait_for(reader.read(_READ_CHUNK), seconds)
    # asyncio.timeout (3.11+) cancels this task in place; wait_for wraps
    # the read in a task of its own, which costs about as much as the read
    # on a guest that answers at once, several times per guest per sweep.
    async with _TIMEOUT(seconds):
        return await reader.read(_READ_CHUNK)
