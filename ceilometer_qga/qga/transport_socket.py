"""Talk to a guest agent directly over a unix socket the poller owns.

This is the transport for the dedicated monitor channel
(``org.openstack.monitor.0``): QEMU listens on the host end, libvirt does not
connect to it, and a second qemu-ga in the guest serves it.  It also drives
``qemu-ga -m unix-listen`` stand-in guests in tests and the demo.

Why not QEMU's ``qemu.qmp`` library
-----------------------------------
``qemu.qmp`` (``QMPClient`` with ``await_greeting=False, negotiate=False``)
was evaluated first, as DESIGN.md asks, against qemu-ga 7.2 on this host:
plain commands (``guest-ping``, ``guest-info``) work, but
``guest-sync-delimited`` does not.  Its reader decodes every line as UTF-8,
so the 0xFF sentinel that the agent puts before the sync reply raises
``UnicodeDecodeError`` in the reader task and the client disconnects
(``ExecInterruptedError: Disconnected``).  It also cannot send the leading
0xFF byte that resets the agent's JSON parser, and it matches replies by
``id``, which a client that must skip stale replies after a timeout cannot
rely on.  The protocol needs exactly those three things on every connect and
after every timeout, so the framing below is our own: about a hundred lines,
every read bounded in time and bytes.  ``tests/functional/
test_transport_socket.py`` keeps the evidence (``test_qemu_qmp_cannot_sync``).

States
------
``DISCONNECTED`` → (connect, send 0xFF + ``guest-sync-delimited`` with a
random id, discard everything up to the 0xFF sentinel and every reply that
does not carry our id) → ``READY``, which means "in sync, nothing
outstanding".  Sending a command moves to ``UNSYNCED`` until its reply is
read, so a timeout or a cancelled sweep leaves it there: the connection
stays open (closing it with a reply unread makes qemu-ga 7.2 in unix-listen
mode exit) and the next command first re-synchronises, which drops the late
reply.  A protocol error (garbage, reply over the byte cap, EOF) closes the
connection: ``DISCONNECTED``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
from typing import Any

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport

SENTINEL = b'\xff'
_READ_CHUNK = 65536
_CLOSE_TIMEOUT = 1.0


class State(enum.Enum):
    """Connection state of a :class:`SocketTransport`."""

    DISCONNECTED = 'disconnected'
    UNSYNCED = 'unsynced'
    READY = 'ready'


class SocketTransport(transport.Transport):
    """qga over a unix stream socket, framed by hand (see module docstring).

    :param guest: label used in errors and logs (instance uuid)
    :param path: the host-side unix socket of the channel
    :param default_timeout: seconds per command when the caller gives none
    :param max_reply_bytes: longest accepted reply line, sentinel included
    """

    kind = 'socket'

    def __init__(self, guest: str, path: str, default_timeout: float,
                 max_reply_bytes: int) -> None:
        super().__init__(guest, default_timeout)
        self.path = path
        self.max_reply_bytes = max_reply_bytes
        self.state = State.DISCONNECTED
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buf = bytearray()
        self._random = random.SystemRandom()

    async def _execute(self, command: str, arguments: dict[str, Any] | None,
                       timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if self.state is State.DISCONNECTED:
                await self._connect(command, deadline)
            if self.state is not State.READY:
                await self._sync(command, deadline)
            message: dict[str, Any] = {'execute': command}
            if arguments:
                message['arguments'] = arguments
            # Until its reply is read a request is outstanding: a timeout or
            # a cancelled sweep leaves the stream UNSYNCED, and the next
            # command resyncs first, which discards the late reply.
            self.state = State.UNSYNCED
            await self._send(json.dumps(message).encode() + b'\n', command)
            reply = self._decode(command, await self._read_line(command,
                                                                deadline))
            self.state = State.READY
        except errors.AgentTimeout:
            raise  # keep the connection open (see the module docstring)
        except errors.QgaError:
            await self.close()
            raise
        if 'error' in reply:
            raise errors.error_from_reply(self.guest, command, reply['error'])
        if 'return' not in reply:
            await self.close()
            raise errors.ProtocolError(self.guest, command,
                                       'reply has neither return nor error')
        return reply['return']

    async def close(self) -> None:
        """Close the socket; safe to call at any time, more than once."""
        writer, self._writer, self._reader = self._writer, None, None
        self._buf.clear()
        self.state = State.DISCONNECTED
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass  # the peer is gone or stuck; the fd is closed either way

    # -- bottom half: bytes on the wire ------------------------------------

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
        self.state = State.UNSYNCED

    async def _sync(self, command: str, deadline: float) -> None:
        """0xFF + guest-sync-delimited; skip to our id (stale replies out)."""
        sync_id = self._random.randrange(1, 2 ** 53)
        request = {'execute': 'guest-sync-delimited',
                   'arguments': {'id': sync_id}}
        await self._send(SENTINEL + json.dumps(request).encode() + b'\n',
                         command)
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
                    self.state = State.READY
                    self.generation += 1
                    return

    async def _send(self, data: bytes, command: str) -> None:
        assert self._writer is not None
        try:
            self._writer.write(data)
            # No drain(): a guest that does not read must not block us;
            # the kernel buffer takes our few hundred bytes.
        except OSError as exc:
            raise errors.AgentNotConnected(self.guest, command,
                                           'send failed: %s' % exc)

    async def _fill(self, command: str, deadline: float) -> None:
        assert self._reader is not None
        try:
            chunk = await asyncio.wait_for(
                self._reader.read(_READ_CHUNK),
                self._remaining(command, deadline))
        except asyncio.TimeoutError:
            raise errors.AgentTimeout(self.guest, command,
                                      'no reply within the timeout')
        except OSError as exc:
            raise errors.AgentNotConnected(self.guest, command,
                                           'read failed: %s' % exc)
        if not chunk:
            raise errors.ProtocolError(self.guest, command,
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

    def _decode(self, command: str, line: bytes | None) -> dict[str, Any]:
        try:
            reply = json.loads(line or b'')
        except (ValueError, RecursionError) as exc:
            raise errors.ProtocolError(self.guest, command,
                                       'invalid JSON: %s' % str(exc)[:200])
        if not isinstance(reply, dict):
            raise errors.ProtocolError(self.guest, command,
                                       'reply is not a JSON object')
        return reply

    def _remaining(self, command: str, deadline: float) -> float:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise errors.AgentTimeout(self.guest, command,
                                      'no reply within the timeout')
        return left
