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

"""Many guests in one process: the qga protocol on N unix sockets.

For ``make bench`` (:mod:`tests.bench.bench`): one asyncio process listens on
``WORKDIR/gNNNN.sock`` for N guests (N up to a few thousand, one listening
socket each) and answers with replies *recorded from a real qemu-ga 7.2*
(``tests/fixtures/agents/qemu-ga-7.2-recorded.json``, made by
:mod:`tests.fixtures.agents.record_qga_replies`; its ``provenance`` says
how).  Every k-th guest (``--silent-every k``: guests k-1, 2k-1, ...) is silent: it accepts
connections, reads and discards, and never answers, like a VM whose agent
is not running.

The protocol rules it shares with the fake agent (request checks, sync,
error texts, reply layout) are :mod:`tests.fixtures.agents.qga_protocol`'s.
What it does like real qemu-ga 7.2 (checked against the real agent: the
``wire`` section of the recording, and ``tests/functional/test_fake_fleet.py``
sends the same bytes to both and compares the replies):

* a 0xFF byte resets the parser and is answered with the agent's
  ``JSON parse error, stray '\\uFFFD'`` error (the reply real qemu-ga sends
  for the sentinel a client puts before ``guest-sync-delimited``);
* ``guest-sync-delimited`` answers ``0xFF`` + ``{"return": ID}`` with the
  request's ``arguments.id``; ``guest-sync`` the same without the 0xFF;
* a request's ``id`` is echoed: ``{"return": ..., "id": ID}`` on success,
  ``{"id": ID, "error": ...}`` on an error (real qemu-ga's key order);
* replies come one per line, in request order (pipelining works);
* recorded commands answer their recorded reply; a command the recorded
  ``guest-info`` lists as disabled answers ``Command X has been disabled``,
  one it does not list ``The command X has not been found``; arguments to a
  command that takes none answer ``Parameter 'K' is unexpected``;
* ``guest-file-open`` of a recorded ``/proc`` file returns handles counting
  from the recorded first one, per guest; ``guest-file-read`` replays the
  recorded reads (the last one, an empty ``eof`` read, repeats);
  ``guest-file-close`` frees the handle; an unknown handle answers
  ``handle 'N' has not been found``; a file that was not recorded answers
  a ``GenericError`` (the real agent's text names the OS error).

What it does not do: requests must end with a newline (real qemu-ga parses a
stream of JSON values; our transport and the baselines send one per line);
one agent accepts several connections at once (real qemu-ga in unix-listen
mode serves one client at a time), and it does not exit when a client
leaves with a reply unread (7.2 does).  Counters never move between sweeps.

Command line (prints ``ready N`` once every socket listens, runs until
SIGTERM/SIGINT, then removes its sockets)::

    python -m tests.bench.fake_fleet --workdir DIR --count 1000 --silent-every 20

Library use: :class:`FakeFleet` runs that process and stops it by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
from typing import Any

from tests.fixtures.agents import qga_protocol as proto
from tests.fixtures.agents.qga_protocol import encode
from tests.fixtures.agents.qga_protocol import SENTINEL
from tests.fixtures import processes

RECORDING = os.path.join(processes.ROOT, 'tests', 'fixtures', 'agents',
                         'qemu-ga-7.2-recorded.json')
#: a line longer than this without a newline is dropped (bounded memory)
MAX_LINE = 1 << 20
#: commands answered from state rather than from the recording
_STATEFUL = {'guest-sync', 'guest-sync-delimited', 'guest-file-open',
             'guest-file-read', 'guest-file-close'}


def socket_path(workdir: str, index: int) -> str:
    """The socket of guest ``index`` (0-based) in ``workdir``."""
    return os.path.join(workdir, 'g%04d.sock' % index)


def is_silent(index: int, silent_every: int) -> bool:
    """True for every ``silent_every``-th guest (0: none is silent)."""
    return silent_every > 0 and index % silent_every == silent_every - 1


class Recording:
    """The recorded replies, pre-encoded once for every guest."""

    def __init__(self, path: str = RECORDING) -> None:
        with open(path) as f:
            data = json.load(f)
        self.provenance = data['provenance']
        self.replies: dict[str, dict[str, Any]] = data['replies']
        self.files: dict[str, dict[str, Any]] = data['files']
        info = self.replies['guest-info']['return']['supported_commands']
        self.disabled = {c['name'] for c in info if not c['enabled']}
        # The reply real qemu-ga sends for a stray 0xFF, byte for byte.
        self.stray_ff = data['wire']['ff_then_sync_delimited'].split(
            '\n', 1)[0].encode('latin-1') + b'\n'
        #: handles count from the first one the agent gave
        self.first_handle = min(f['open']['return']
                                for f in self.files.values())
        # The common case (recorded return, no id) as ready bytes.
        self._plain = {name: encode(*next(iter(reply.items())))
                       for name, reply in self.replies.items()}

    def answer(self, command: str, has_id: bool, request_id: Any) -> bytes:
        """Reply to a recorded or unknown argument-less command."""
        reply = self.replies.get(command)
        if reply is None:
            error = (proto.disabled(command) if command in self.disabled
                     else proto.not_found(command))
            return encode('error', error, request_id, has_id)
        if not has_id:
            return self._plain[command]
        key, value = next(iter(reply.items()))
        return encode(key, value, request_id, has_id)


class GuestProtocol(asyncio.Protocol):
    """One connection to one fake guest."""

    def __init__(self, guest: FakeGuest) -> None:
        self.guest = guest
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Parse complete lines; answer each in order."""
        if self.guest.silent:
            return  # an agent that is not running: bytes go nowhere
        out = []
        self._buf += data
        while True:
            ff = self._buf.find(SENTINEL)
            nl = self._buf.find(b'\n')
            if ff >= 0 and (nl < 0 or ff < nl):
                # 0xFF resets the parser: what came before is dropped.
                del self._buf[:ff + 1]
                out.append(self.guest.recording.stray_ff)
                continue
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    self._buf.clear()
                break
            line = bytes(self._buf[:nl])
            del self._buf[:nl + 1]
            if line.strip():
                out.append(self.guest.handle(line))
        if out and self.transport is not None:
            self.transport.write(b''.join(out))


class FakeGuest:
    """The state of one fake agent: its open file handles."""

    def __init__(self, recording: Recording, silent: bool) -> None:
        self.recording = recording
        self.silent = silent
        self._next_handle = recording.first_handle
        #: handle -> [path, index of the next recorded read]
        self._handles: dict[int, list[Any]] = {}

    def handle(self, line: bytes) -> bytes:
        """The reply line to one request line."""
        try:
            request = json.loads(line)
        except ValueError as exc:
            return encode('error', proto.parse_error(str(exc)))
        try:
            command, args = proto.check_request(request)
        except proto.BadRequest as exc:
            return encode('error', exc.error)
        has_id = 'id' in request
        rid = request.get('id')
        if command in _STATEFUL:
            return self._stateful(command, args, rid, has_id)
        if args and command in self.recording.replies:
            return encode('error', proto.unexpected_parameter(next(iter(args))),
                          rid, has_id)
        return self.recording.answer(command, has_id, rid)

    def _stateful(self, command: str, args: dict[str, Any], rid: Any,
                  has_id: bool) -> bytes:
        if command in proto.SYNC_COMMANDS:
            prefix, reply = proto.sync_reply(command, args)
            return prefix + encode('return', reply['return'], rid, has_id)
        if command == 'guest-file-open':
            path = args.get('path')
            if path not in self.recording.files:
                return encode('error', {
                    'class': 'GenericError',
                    'desc': "failed to open file '%s' (mode: '%s')"
                            % (path, args.get('mode', 'r'))}, rid, has_id)
            handle = self._next_handle
            self._next_handle += 1
            self._handles[handle] = [path, 0]
            return encode('return', handle, rid, has_id)
        handle = args.get('handle')
        state = self._handles.get(handle)  # type: ignore[arg-type]
        if state is None:
            return encode('error', proto.handle_not_found(handle), rid, has_id)
        if command == 'guest-file-close':
            del self._handles[handle]  # type: ignore[arg-type]
            return encode('return', {}, rid, has_id)
        reads = self.recording.files[state[0]]['reads']
        reply = reads[min(state[1], len(reads) - 1)]
        state[1] += 1
        key, value = next(iter(reply.items()))
        return encode(key, value, rid, has_id)


async def serve(workdir: str, count: int, silent_every: int,
                recording: Recording) -> None:
    """Listen on every socket, print ``ready N``, serve until a signal."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    paths = []
    try:
        for index in range(count):
            guest = FakeGuest(recording, is_silent(index, silent_every))
            path = socket_path(workdir, index)
            if os.path.exists(path):
                os.unlink(path)
            servers.append(await loop.create_unix_server(
                lambda g=guest: GuestProtocol(g), path, backlog=128))
            paths.append(path)
        print('ready %d' % count, flush=True)
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: a socket per guest, and more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class FakeFleet:
    """Runs ``tests/bench/fake_fleet.py`` as a process; a context manager.

    :param workdir: existing directory with a short path (AF_UNIX limit)
    :param count: number of guests
    :param silent_every: every k-th guest is silent (0: none)
    """

    def __init__(self, workdir: str, count: int, silent_every: int = 0,
                 recording: str = RECORDING) -> None:
        self.workdir = workdir
        self.count = count
        self.silent_every = silent_every
        self.recording = recording
        self.proc: subprocess.Popen | None = None

    @property
    def sockets(self) -> list[str]:
        """Every guest's socket, in index order."""
        return [socket_path(self.workdir, i) for i in range(self.count)]

    def silent(self, index: int) -> bool:
        """True when guest ``index`` never answers."""
        return is_silent(index, self.silent_every)

    def __enter__(self) -> FakeFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> FakeFleet:
        """Start the process and wait for its ``ready`` line."""
        self.proc = subprocess.Popen(
            processes.python_module(
                'tests.bench.fake_fleet', '--workdir', self.workdir,
                '--count', str(self.count), '--silent-every',
                str(self.silent_every), '--recording', self.recording),
            cwd=processes.ROOT,
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True)
        assert self.proc.stdout is not None
        try:
            line = _readline(self.proc, timeout)
        except BaseException:
            self.stop()
            raise
        if not line.startswith('ready'):
            self.stop()
            raise RuntimeError('fake fleet did not start: %r' % line)
        return self

    def stop(self) -> None:
        """Stop the process by pid (TERM, then KILL)."""
        if self.proc is not None:
            processes.stop_process(self.proc, 10.0)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError('fake fleet: no ready line within %.0f s'
                               % timeout)
    return proc.stdout.readline()


def main(argv: list[str] | None = None) -> int:
    """Serve the fleet until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--count', type=int, default=100)
    parser.add_argument('--silent-every', type=int, default=0,
                        help='every k-th guest never answers (0: none)')
    parser.add_argument('--recording', default=RECORDING)
    args = parser.parse_args(argv)
    raise_fd_limit()
    os.makedirs(args.workdir, exist_ok=True)
    asyncio.run(serve(args.workdir, args.count, args.silent_every,
                      Recording(args.recording)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
