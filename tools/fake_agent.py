#!/usr/bin/env python3
"""A fault-injecting fake QEMU guest agent on a unix socket.

Real ``qemu-ga`` stand-ins (``tools/qga_standin.py``) are what the tests use
for everything a healthy agent does.  This fake exists for what a real agent
does only when something is wrong: it never answers, answers late, answers
garbage or a reply too big to hold, repeats stale replies, hangs up half way,
or sends well-formed JSON full of nonsense.  It speaks the real wire
protocol, down to qemu-ga 7.2's quirks:

* requests are JSON objects read by a streaming parser (a newline is not
  needed); what happens to a request's top-level ``id`` depends on the
  agent version (``--agent-version``, see :func:`framing_of`): refused
  before 2.12, accepted and not echoed in 2.12, echoed from 3.0;
* a 0xFF byte resets the parser, and the agent answers it with
  ``{"error": {"class": "GenericError", "desc": "JSON parse error, stray
  '\\uFFFD'"}}`` (seen on qemu-ga 7.2, on every 0xFF);
* ``guest-sync-delimited`` is answered with 0xFF followed by the reply;
* unknown commands give ``CommandNotFound "The command X has not been
  found"``, disabled ones ``CommandNotFound "Command X has been disabled"``;
* one client at a time: a second client can connect, but is served only when
  the first one has left.

Modes (``--mode``):

``ok``
    a healthy agent: sync, ping, guest-info (``--commands``/``--disabled``)
    and fixed, plausible replies for the read-only data commands.
``hang``
    accepts and reads, never answers.
``slow``
    answers like ``ok`` after ``--delay`` seconds.
``garbage``
    answers random bytes (with 0xFF and invalid UTF-8; sometimes no newline).
``huge``
    answers one valid JSON line of ``--size`` bytes (20 MB by default).
``endless``
    streams bytes without a newline until the client leaves.
``stale``
    answers every ``guest-sync-delimited`` first with a 0xFF-delimited reply
    carrying a wrong id, then the stale reply of the previous command, and
    only then 0xFF and the right id (a client must keep scanning for 0xFF
    until the id matches).
``disconnect``
    writes half of the reply, then closes the connection.
``wrong-types``
    well-formed JSON with wrong types and absurd numbers (negative, NaN,
    1e300, used > total, strings for numbers, objects for lists).
``restart``
    like ``ok``, but drops the connection (without answering) at the
    request after ``--after`` answered ones, like an agent that restarts.
``frozen``
    like ``ok`` while a Nova quiesce holds the guest's filesystems, as
    qemu-ga 7.2 does after ``guest-fsfreeze-freeze`` (``qga/main.c``:
    ``ga_set_frozen`` runs ``qmp_disable_command(..., "the agent is in
    frozen state")`` on every command not in ``ga_freeze_allowlist``; read
    in QEMU's source, the reason string found in Debian's qemu-ga 7.2
    binary, and the disabled set seen on the real agent in the e2e VM,
    ``tests/e2e/test_poller_vm.py::test_frozen_then_thawed``): ``guest-info`` lists every
    command but the allow-list (:data:`FROZEN_SAFE`) with ``enabled:
    false``, calling one gets ``CommandNotFound "Command X has been
    disabled: the agent is in frozen state"`` (``qapi/qmp-dispatch.c``),
    and ``guest-fsfreeze-status`` says ``"frozen"``.  With
    ``--freeze-file PATH`` the agent is frozen only while PATH exists, so a
    test can thaw it; the fake never freezes anything itself.
``unsolicited``
    like ``ok``, but before every reply to a command it sends two replies
    nobody asked for, each carrying another command's result: one with an
    id that was never sent, one with no id at all.
``close``
    like ``ok``, but closes the connection after every reply to a command
    (sync replies excepted, so that a client can get one command through
    per connection).
``surrogates``
    like ``ok``, but every string in the data replies (and the version in
    ``guest-info``) ends in a JSON-escaped lone surrogate (``"vm\\ud800"``).
``invalid-items``
    like ``ok``, but ``guest-get-fsinfo`` and
    ``guest-network-get-interfaces`` answer ``--items`` entries (10,000 by
    default) that are all invalid (negative sizes, wrong types).

``--recording FILE`` (with ``ok``, or any fault mode) replaces the fixed
replies with a recorded agent: a JSON object with ``version``,
``commands`` (``{name: enabled}``, what ``guest-info`` lists), ``replies``
(``{command: return value}``), ``files`` (``{path: text}`` for
``guest-file-*``) and optionally ``statvfs`` (``{path: return value}`` for
the patched agents' ``guest-get-statvfs``; a path without one gets a
``GenericError``: the patched agent's own error text is not on record,
and the poller only needs it to be an error).  Everything else behaves as
in ``ok`` mode, which follows qemu-ga 7.2.  The recordings in
``tests/fixtures/agents/`` say where each one comes from.

``--fault-on any`` (default) applies the fault to every request, sync
included; ``--fault-on command`` answers syncs normally and applies it to
the other commands only, so a client gets past its handshake first.

Memory stays bounded whatever a client does: a request longer than
``--max-request`` bytes is answered with one parse error and dropped up to
the next newline or 0xFF, large replies are
streamed in chunks with flow control, and at most ``--max-connections``
clients are held (the rest are closed at once).  SIGTERM or SIGINT close
every connection, remove the socket and exit 0.

Usage::

    python tools/fake_agent.py --socket /tmp/x.sock --mode hang
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import sys
from typing import Any

LOG = logging.getLogger('fake_agent')

MODES = ('ok', 'hang', 'slow', 'garbage', 'huge', 'endless', 'stale',
         'disconnect', 'wrong-types', 'restart', 'frozen', 'unsolicited',
         'close', 'surrogates', 'invalid-items')
#: what a frozen qemu-ga still answers (``ga_freeze_allowlist`` in QEMU
#: 7.2's ``qga/main.c``)
FROZEN_SAFE = frozenset({'guest-sync-delimited', 'guest-sync', 'guest-ping',
                         'guest-info', 'guest-fsfreeze-status',
                         'guest-fsfreeze-thaw'})
#: modes whose misbehaviour ``--fault-on`` scopes
FAULT_MODES = frozenset({'hang', 'slow', 'garbage', 'huge', 'endless', 'disconnect'})
SYNC_COMMANDS = frozenset({'guest-sync-delimited', 'guest-sync'})

VERSION = '7.2.22-fake'
#: the reply of qemu-ga before 2.12 to a request with a top-level id
#: (``qmp_dispatch_check_obj`` in ``qapi/qmp-dispatch.c``:
#: ``error_setg(errp, QERR_QMP_EXTRA_MEMBER, arg_name)``); it carries no id
ID_REFUSAL = {'class': 'GenericError',
              'desc': "QMP input object member 'id' is unexpected"}


def framing_of(version: str) -> str:
    """How qemu-ga ``version`` treats a request's top-level ``id``.

    * ``'refuse-id'`` before 2.12: ``qapi/qmp-dispatch.c``'s
      ``qmp_dispatch_check_obj`` accepts only ``execute`` and ``arguments``
      and answers :data:`ID_REFUSAL`; replies never carry an id;
    * ``'ignore-id'`` in 2.12: the out-of-band work moved the monitor's
      input check into ``qmp_dispatch_check_obj``, which then accepts
      ``id`` (and ``control``), but ``qmp_dispatch`` builds a reply
      without it (only ``monitor.c`` added the id);
    * ``'echo-id'`` from 3.0: ``qmp_dispatch`` copies the request's id into
      the reply, ``return`` and ``error`` alike (seen on qemu-ga 5.2 and
      7.2 here).
    """
    parts = []
    for part in version.split('.')[:2]:
        digits = ''.join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    major, minor = (parts + [0, 0])[:2]
    if major >= 3:
        return 'echo-id'
    if (major, minor) >= (2, 12):
        return 'ignore-id'
    return 'refuse-id'


FF_ERROR = {'class': 'GenericError', 'desc': "JSON parse error, stray '\ufffd'"}
CHUNK = 64 * 1024

#: /proc files a fake guest offers through guest-file-open/read/close
PROC_FILES = {
    '/proc/meminfo': (b'MemTotal:        2048000 kB\nMemFree:          512000 kB\n'
                      b'MemAvailable:    1024000 kB\nBuffers:           10240 kB\n'
                      b'Cached:           409600 kB\n'),
    '/proc/loadavg': b'0.50 0.25 0.12 1/123 4567\n',
    '/proc/stat': (b'cpu  1000 20 300 40000 50 0 6 0 0 0\n'
                   b'cpu0 1000 20 300 40000 50 0 6 0 0 0\n'),
}

#: plausible answers of a healthy Linux guest (the shapes of qemu-ga 7.2)
OK_REPLIES: dict[str, Any] = {
    'guest-get-osinfo': {'id': 'debian', 'name': 'Debian GNU/Linux', 'version-id': '12',
                         'pretty-name': 'Debian GNU/Linux 12 (bookworm)',
                         'kernel-release': '6.1.0-fake', 'machine': 'x86_64'},
    'guest-get-host-name': {'host-name': 'fake-guest'},
    'guest-get-timezone': {'zone': 'UTC', 'offset': 0},
    'guest-get-fsinfo': [{'name': 'vda1', 'mountpoint': '/', 'type': 'ext4',
                          'used-bytes': 1073741824, 'total-bytes': 10737418240,
                          'disk': []}],
    'guest-get-cpustats': [{'cpu': 0, 'type': 'linux', 'user': 1000, 'nice': 20,
                            'system': 300, 'idle': 40000, 'iowait': 50, 'irq': 0,
                            'softirq': 6, 'steal': 0, 'guest': 0, 'guestnice': 0}],
    'guest-get-diskstats': [{'name': 'vda', 'major': 254, 'minor': 0,
                             'stats': {'read-ios': 100, 'read-sectors': 2048,
                                       'write-ios': 50, 'write-sectors': 1024}}],
    'guest-get-vcpus': [{'logical-id': 0, 'online': True, 'can-offline': False}],
    'guest-get-users': [{'user': 'alice', 'login-time': 1700000000.0}],
    'guest-network-get-interfaces': [
        {'name': 'eth0', 'hardware-address': '52:54:00:12:34:56',
         'statistics': {'rx-bytes': 1000, 'rx-packets': 10, 'rx-errs': 0, 'rx-dropped': 0,
                        'tx-bytes': 2000, 'tx-packets': 20, 'tx-errs': 0,
                        'tx-dropped': 0}}],
    'guest-get-load': {'load1m': 0.5, 'load5m': 0.25, 'load15m': 0.125},
    'guest-fsfreeze-status': 'thawed',
}

#: well-formed JSON that no sane agent sends (``wrong-types`` mode)
WRONG_REPLIES: dict[str, Any] = {
    'guest-get-osinfo': {'id': 5, 'kernel-release': ['x'], 'pretty-name': None},
    'guest-get-host-name': {'host-name': 12},
    'guest-get-fsinfo': [
        {'name': 5, 'mountpoint': None, 'used-bytes': -1, 'total-bytes': 'lots'},
        {'name': 'vda1', 'mountpoint': '/', 'used-bytes': 10 ** 30, 'total-bytes': 1},
        {'name': 'vda2', 'mountpoint': '/nan', 'used-bytes': float('nan'),
         'total-bytes': float('inf')},
        'not-an-object',
    ],
    'guest-get-cpustats': [{'cpu': 'zero', 'type': 'linux', 'user': -5, 'idle': 'x'},
                           {'cpu': 1, 'type': 'linux', 'user': 1e300, 'system': None}],
    'guest-get-diskstats': [{'name': 'vda', 'stats': {'read-sectors': -10,
                                                      'write-ios': 1e30}},
                            {'name': None, 'stats': 'none'}],
    'guest-get-vcpus': [{'logical-id': 'a', 'online': 'yes'}],
    'guest-get-users': 'nobody',
    'guest-network-get-interfaces': [{'name': None, 'statistics': {'rx-bytes': -1,
                                                                   'tx-bytes': 'many'}},
                                     {'name': 'eth0', 'statistics': [1, 2, 3]}],
    'guest-get-load': {'load1m': 'high', 'load5m': -1, 'load15m': float('nan')},
    'guest-file-open': 'handle',
    'guest-file-read': {'count': -1, 'buf-b64': '!!not base64!!', 'eof': 'yes'},
    'guest-file-close': [],
}

DEFAULT_COMMANDS = tuple(sorted(
    {'guest-sync-delimited', 'guest-sync', 'guest-ping', 'guest-info',
     'guest-file-open', 'guest-file-read', 'guest-file-close'}
    | (set(OK_REPLIES) - {'guest-get-load'})))


@dataclasses.dataclass
class Options:
    """How the fake misbehaves; the command line maps onto these fields."""

    mode: str = 'ok'
    delay: float = 5.0
    size: int = 20 * 1024 * 1024
    after: int = 3
    fault_on: str = 'any'
    commands: tuple[str, ...] = DEFAULT_COMMANDS
    disabled: tuple[str, ...] = ()
    seed: int | None = None
    max_request: int = 1024 * 1024
    max_connections: int = 16
    #: a recorded agent (see ``--recording``), or None for the fixed replies
    recording: dict[str, Any] | None = None
    items: int = 10000
    freeze_file: str | None = None
    #: the qemu-ga version to be (its framing follows it); None: the
    #: recording's, else :data:`VERSION`
    agent_version: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError('unknown mode %r (one of %s)' % (self.mode, ', '.join(MODES)))
        if self.fault_on not in ('any', 'command'):
            raise ValueError('fault_on must be "any" or "command"')
        if self.recording is not None:
            listed = self.recording['commands']
            self.commands = tuple(sorted(
                set(listed) | {'guest-sync-delimited', 'guest-sync'}))
            self.disabled = tuple(sorted(c for c, on in listed.items() if not on))

    @property
    def version(self) -> str:
        """What guest-info says."""
        if self.agent_version is not None:
            return self.agent_version
        return self.recording['version'] if self.recording else VERSION

    @property
    def framing(self) -> str:
        """How this version treats a request's top-level ``id``."""
        return framing_of(self.version)

    @property
    def replies(self) -> dict[str, Any]:
        """Return values of the data commands."""
        return self.recording['replies'] if self.recording else OK_REPLIES

    @property
    def files(self) -> dict[str, bytes]:
        """What guest-file-open/read give, per path."""
        if self.recording is None:
            return PROC_FILES
        return {path: text.encode() for path, text in self.recording['files'].items()}


class _Hangup(Exception):
    """The fake decided to drop the connection."""


class _Connection:
    """One client: parses its byte stream and answers per the mode."""

    def __init__(self, agent: FakeAgent, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.agent = agent
        self.opts = agent.options
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        #: dropping input after an overlong request, until newline or 0xFF
        self.discarding = False
        self.answered = 0
        self.handles: dict[int, bytes] = {}
        self.last_reply = b'{"return": {}}\n'
        self.decoder = json.JSONDecoder()

    async def run(self) -> None:
        while True:
            data = await self.reader.read(CHUNK)
            if not data:
                return
            for event in self.feed(data):
                await self.handle(event)

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        """Turn received bytes into ('ff'|'parse-error'|'request', value) events."""
        events: list[tuple[str, Any]] = []
        for index, part in enumerate(data.split(b'\xff')):
            if index:
                # 0xFF resets the parser; qemu-ga 7.2 answers it with an error.
                self.buf.clear()
                self.discarding = False
                events.append(('ff', None))
            if self.discarding:
                # the rest of an overlong request, up to the next newline
                if b'\n' not in part:
                    continue
                part = part.split(b'\n', 1)[1]
                self.discarding = False
            self.buf += part
            events.extend(self._objects())
        return events

    def _objects(self) -> list[tuple[str, Any]]:
        events: list[tuple[str, Any]] = []
        while True:
            text = self.buf.decode('utf-8', 'surrogateescape').lstrip()
            if not text:
                self.buf.clear()
                return events
            try:
                obj, end = self.decoder.raw_decode(text)
            except json.JSONDecodeError as exc:
                incomplete = (exc.pos >= len(text)
                              or exc.msg.startswith('Unterminated string'))
                if incomplete and len(self.buf) <= self.opts.max_request:
                    return events
                self.buf.clear()
                self.discarding = incomplete
                reason = 'request too long' if incomplete else exc.msg
                events.append(('parse-error', reason))
                return events
            self.buf[:] = text[end:].encode('utf-8', 'surrogateescape')
            events.append(('request', obj))

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, obj: dict[str, Any], prefix: bytes = b'') -> None:
        await self.write(prefix + json.dumps(obj).encode() + b'\n')

    async def handle(self, event: tuple[str, Any]) -> None:
        kind, value = event
        hanging = self.opts.mode == 'hang' and self.opts.fault_on == 'any'
        if kind == 'ff':
            if not hanging:
                await self.reply({'error': FF_ERROR})
            return
        if kind == 'parse-error':
            if not hanging:
                await self.reply({'error': {'class': 'GenericError',
                                            'desc': 'JSON parse error, %s' % value}})
            return
        await self.request(value)

    async def request(self, obj: Any) -> None:
        self.agent.requests += 1
        if not isinstance(obj, dict) or not isinstance(obj.get('execute'), str):
            await self.reply({'error': {'class': 'GenericError',
                                        'desc': 'QMP input must be a JSON object '
                                                'with a string member "execute"'}})
            return
        command = obj['execute']
        args = obj.get('arguments') if isinstance(obj.get('arguments'), dict) else {}
        # With --verbose, the log is the list of what a client sent.
        LOG.debug('request %s %s', command, json.dumps(args, sort_keys=True))
        LOG.debug('request-id %s %s', command, 'id' in obj)
        framing = self.opts.framing
        if 'id' in obj and framing == 'refuse-id':
            await self.reply({'error': ID_REFUSAL})
            return
        extra = ({'id': obj['id']} if 'id' in obj and framing == 'echo-id'
                 else {})
        mode = self.opts.mode
        is_sync = command in SYNC_COMMANDS
        faulted = mode in FAULT_MODES and (self.opts.fault_on == 'any' or not is_sync)

        if mode == 'restart' and self.answered >= self.opts.after:
            raise _Hangup('restart after %d answers' % self.answered)
        if faulted:
            await self.fault(command, args, extra)
            return
        if mode == 'frozen' and self.agent.frozen() and command not in FROZEN_SAFE:
            await self.reply({'error': {
                'class': 'CommandNotFound',
                'desc': 'Command %s has been disabled: the agent is in '
                        'frozen state' % command}, **extra})
            return
        if mode == 'stale' and command == 'guest-sync-delimited':
            # What a client sees after timeouts: the reply to an earlier
            # sync (wrong id) and the late reply of its previous command.
            wrong = (args.get('id', 0) if isinstance(args.get('id'), int) else 0) + 1
            await self.write(b'\xff' + json.dumps({'return': wrong}).encode() + b'\n'
                             + self.last_reply)
        if mode == 'unsolicited' and not is_sync:
            # Another command's result, twice: under an id never sent, and
            # under no id at all.
            other = 'guest-get-host-name' if command != 'guest-get-host-name' \
                else 'guest-get-osinfo'
            _, stray = self.answer(other, {})
            await self.reply({**stray, 'id': 'unsolicited-%d' % self.answered})
            await self.reply(stray)
        prefix, reply = self.answer(command, args)
        await self.reply({**reply, **extra}, prefix)
        self.answered += 1
        if not is_sync:
            self.last_reply = json.dumps({**reply, **extra}).encode() + b'\n'
        if mode == 'close' and not is_sync:
            raise _Hangup('close after a reply')

    async def fault(self, command: str, args: dict[str, Any],
                    extra: dict[str, Any]) -> None:
        mode = self.opts.mode
        if mode == 'hang':
            return
        if mode == 'slow':
            await asyncio.sleep(self.opts.delay)
            prefix, reply = self.answer(command, args)
            await self.reply({**reply, **extra}, prefix)
            self.answered += 1
        elif mode == 'garbage':
            await self.write(self.agent.garbage())
        elif mode == 'huge':
            await self.stream(self.opts.size)
        elif mode == 'endless':
            await self.stream(None)
        elif mode == 'disconnect':
            prefix, reply = self.answer(command, args)
            data = prefix + json.dumps({**reply, **extra}).encode() + b'\n'
            await self.write(data[:max(1, len(data) // 2)])
            raise _Hangup('disconnect mid-reply')

    async def stream(self, size: int | None) -> None:
        """Write ``{"return": "xxx..."}\\n`` of ``size`` bytes, or forever."""
        head, tail = b'{"return": "', b'"}\n'
        await self.write(head)
        left = None if size is None else max(0, size - len(head) - len(tail))
        block = b'x' * CHUNK
        while left is None or left > 0:
            step = CHUNK if left is None else min(CHUNK, left)
            await self.write(block[:step])
            if left is not None:
                left -= step
        await self.write(tail)
        self.answered += 1

    def answer(self, command: str, args: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """The reply of a healthy (or ``wrong-types``) agent: (prefix, object)."""
        if command == 'guest-sync-delimited':
            return b'\xff', {'return': args.get('id')}
        if command == 'guest-sync':
            return b'', {'return': args.get('id')}
        if command not in self.opts.commands:
            return b'', _not_found('The command %s has not been found' % command)
        if command in self.opts.disabled:
            return b'', _not_found('Command %s has been disabled' % command)
        if command == 'guest-ping':
            return b'', {'return': {}}
        frozen = self.opts.mode == 'frozen' and self.agent.frozen()
        if command == 'guest-info':
            version = (self.opts.version + '\ud800'
                       if self.opts.mode == 'surrogates' else self.opts.version)
            return b'', {'return': {'version': version, 'supported_commands': [
                {'name': name, 'enabled': name not in self.opts.disabled
                 and (not frozen or name in FROZEN_SAFE),
                 'success-response': True} for name in self.opts.commands]}}
        if self.opts.mode == 'wrong-types' and command in WRONG_REPLIES:
            return b'', {'return': WRONG_REPLIES[command]}
        if command == 'guest-fsfreeze-status':
            return b'', {'return': 'frozen' if frozen else 'thawed'}
        if self.opts.mode == 'invalid-items' and command in INVALID_ITEM:
            return b'', {'return': [INVALID_ITEM[command](i)
                                    for i in range(self.opts.items)]}
        if self.opts.mode == 'surrogates' and command in OK_REPLIES:
            return b'', {'return': _with_surrogates(OK_REPLIES[command])}
        if command.startswith('guest-file-'):
            return b'', self.file_command(command, args)
        if command == 'guest-get-statvfs' and self.opts.recording is not None:
            found = self.opts.recording.get('statvfs', {}).get(args.get('path'))
            if found is None:
                return b'', {'error': {'class': 'GenericError', 'desc': (
                    "statvfs of '%s' failed: No such file or directory" % args.get('path'))}}
            return b'', {'return': found}
        if command in self.opts.replies:
            return b'', {'return': self.opts.replies[command]}
        return b'', {'error': {'class': 'GenericError',
                               'desc': 'the fake agent has no reply for %s' % command}}

    def file_command(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        if command == 'guest-file-open':
            content = self.opts.files.get(args.get('path'))  # type: ignore[arg-type]
            if content is None:
                return {'error': {'class': 'GenericError',
                                  'desc': "failed to open file '%s'" % args.get('path')}}
            handle = 1000 + len(self.handles)
            self.handles[handle] = content
            return {'return': handle}
        handle = args.get('handle')
        if handle not in self.handles:
            return {'error': {'class': 'GenericError',
                              'desc': 'handle \'%s\' has not been found' % handle}}
        if command == 'guest-file-close':
            del self.handles[handle]
            return {'return': {}}
        if command == 'guest-file-read':
            count = args.get('count', 4096)
            count = count if isinstance(count, int) and count > 0 else 4096
            data, self.handles[handle] = (self.handles[handle][:count],
                                          self.handles[handle][count:])
            return {'return': {'count': len(data), 'eof': not self.handles[handle],
                               'buf-b64': base64.b64encode(data).decode()}}
        return {'error': {'class': 'GenericError',
                          'desc': 'the fake agent does not do %s' % command}}


#: one invalid entry per index (``invalid-items`` mode)
INVALID_ITEM = {
    'guest-get-fsinfo': lambda i: {'name': 'vd%d' % i, 'mountpoint': '/m%d' % i,
                                   'type': 'ext4', 'used-bytes': -1 - i,
                                   'total-bytes': 'lots'},
    'guest-network-get-interfaces': lambda i: {'name': 'eth%d' % i,
                                               'statistics': {'rx-bytes': -1 - i,
                                                              'tx-bytes': 'many'}},
}


def _with_surrogates(value: Any) -> Any:
    """``value`` with a lone surrogate appended to every string in it."""
    if isinstance(value, str):
        return value + '\ud800'
    if isinstance(value, list):
        return [_with_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_surrogates(v) for k, v in value.items()}
    return value


def _not_found(desc: str) -> dict[str, Any]:
    return {'error': {'class': 'CommandNotFound', 'desc': desc}}


class FakeAgent:
    """The fake agent server; ``async with FakeAgent(path, Options(...))``."""

    def __init__(self, path: str, options: Options | None = None) -> None:
        self.path = path
        self.options = options or Options()
        self.random = random.Random(self.options.seed)
        #: clients accepted and requests parsed since start
        self.connections = 0
        self.requests = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._one_client = asyncio.Lock()

    async def __aenter__(self) -> FakeAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on the socket (a stale socket file is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._client, path=self.path)

    async def stop(self) -> None:
        """Close the listener and every connection; remove the socket."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def frozen(self) -> bool:
        """Whether the ``frozen`` mode is frozen now (``--freeze-file``)."""
        return self.options.freeze_file is None or os.path.exists(self.options.freeze_file)

    def garbage(self) -> bytes:
        """Random bytes with 0xFF and invalid UTF-8; newline-terminated or not."""
        rnd = self.random
        data = bytearray(rnd.randbytes(rnd.randint(16, 4096)))
        for bad in (b'\xff', b'\xc3\x28', b'\xed\xa0\x80', b'{"return": '):
            pos = rnd.randint(0, len(data))
            data[pos:pos] = bad
        data = data.replace(b'\n', b' ')
        if rnd.random() < 0.5:
            data += b'\n'
        return bytes(data)

    async def _client(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= self.options.max_connections:
            writer.close()
            return
        self._tasks.add(task)
        self.connections += 1
        try:
            # qemu-ga serves one client at a time; others wait in the backlog.
            async with self._one_client:
                await _Connection(self, reader, writer).run()
        except _Hangup as exc:
            LOG.debug('hanging up: %s', exc)
        except (ConnectionError, OSError) as exc:
            LOG.debug('client gone: %s', exc)
        except asyncio.CancelledError:
            # stop() cancels us.  End normally: asyncio's stream callback
            # logs a traceback for a client task that ends cancelled.
            LOG.debug('closing client on stop')
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def serve(path: str, options: Options) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with FakeAgent(path, options):
        LOG.info('fake agent (%s) listening on %s', options.mode, path)
        await stop.wait()


def parse_args(argv: list[str] | None = None) -> tuple[str, Options]:
    """Command line → (socket path, options)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--socket', required=True, help='unix socket path to listen on')
    parser.add_argument('--mode', choices=MODES, default='ok')
    parser.add_argument('--delay', type=float, default=5.0, help='slow: seconds per reply')
    parser.add_argument('--size', type=int, default=20 * 1024 * 1024,
                        help='huge: bytes in the reply line')
    parser.add_argument('--after', type=int, default=3,
                        help='restart: answers per connection before it is dropped')
    parser.add_argument('--fault-on', choices=('any', 'command'), default='any')
    parser.add_argument('--commands', help='comma-separated commands the agent has')
    parser.add_argument('--disabled', default='', help='comma-separated disabled commands')
    parser.add_argument('--seed', type=int, help='garbage: random seed')
    parser.add_argument('--max-request', type=int, default=1024 * 1024)
    parser.add_argument('--max-connections', type=int, default=16)
    parser.add_argument('--recording', help='JSON file of a recorded agent to replay')
    parser.add_argument('--items', type=int, default=10000,
                        help='invalid-items: entries per list')
    parser.add_argument('--freeze-file',
                        help='frozen: frozen only while this file exists')
    parser.add_argument('--agent-version',
                        help='the qemu-ga version to be (default: the '
                             "recording's, else %s); the request framing "
                             'follows it (see framing_of)' % VERSION)
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)
    recording = None
    if args.recording:
        with open(args.recording) as src:
            recording = json.load(src)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format='fake_agent: %(message)s')
    commands = (tuple(c for c in args.commands.split(',') if c)
                if args.commands else DEFAULT_COMMANDS)
    options = Options(mode=args.mode, delay=args.delay, size=args.size, after=args.after,
                      fault_on=args.fault_on, commands=commands,
                      disabled=tuple(c for c in args.disabled.split(',') if c),
                      seed=args.seed, max_request=args.max_request,
                      max_connections=args.max_connections, recording=recording,
                      items=args.items, freeze_file=args.freeze_file,
                      agent_version=args.agent_version)
    return args.socket, options


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python tools/fake_agent.py``."""
    path, options = parse_args(argv)
    asyncio.run(serve(path, options))
    return 0


if __name__ == '__main__':
    sys.exit(main())
