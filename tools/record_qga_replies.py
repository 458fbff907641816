#!/usr/bin/env python3
"""Record what a real ``qemu-ga`` answers, for the fake fleet to replay.

Starts one real stand-in guest (:mod:`tools.qga_standin`: the Debian
``qemu-ga`` in ``unix-listen`` mode, every command that is not read-only
blocked) and writes a JSON recording of:

* ``replies``: the reply object (``return`` or ``error``) of every read-only
  command of :data:`ceilometer_qga.qga.policy.READ_ONLY_COMMANDS` sent
  without arguments, except the ones that need arguments (sync and file
  commands), plus one blocked command (``disabled``) and one unknown one;
* ``files``: for each allow-listed ``/proc`` file, the ``guest-file-open``
  reply, every ``guest-file-read`` reply (``count`` 16384, the poller's
  chunk) up to ``eof`` and one read after it, and the ``guest-file-close``
  reply;
* ``wire``: raw bytes (latin-1) of exchanges that show the framing: the
  reply to a leading 0xFF plus ``guest-sync-delimited``, ``id`` echo on a
  return and on an error, a ``guest-sync`` without 0xFF, a parse error, a
  read of a handle that is not open;
* ``provenance``: agent version, command line, date, kernel, this script.

Usage: ``python tools/record_qga_replies.py [--output tools/recordings/
qemu-ga-7.2.json]``.  Regenerate when the agent version changes; the fake
fleet (:mod:`tools.fake_fleet`) reads the file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from ceilometer_qga.qga import policy  # noqa: E402
from tools import qga_standin  # noqa: E402

DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              'recordings', 'qemu-ga-7.2.json')
#: the poller's guest-file-read count (ceilometer_qga/session.py)
READ_COUNT = 16384
#: commands recorded elsewhere in the recording, or needing arguments
_WITH_ARGUMENTS = {'guest-sync', 'guest-sync-delimited', 'guest-file-open',
                   'guest-file-read', 'guest-file-close'}


def exchange(path: str, data: bytes, settle: float = 0.3) -> bytes:
    """Send ``data`` on a fresh connection; return every byte read.

    Reads until ``settle`` seconds pass without data, so that every reply is
    read before closing (qemu-ga 7.2 exits on an unread reply).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(settle)
        sock.connect(path)
        sock.sendall(data)
        out = b''
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
    time.sleep(0.2)  # let the supervisor restart the agent if it left
    return out


def _raw(path: str, data: bytes, settle: float = 0.3) -> str:
    """:func:`exchange`, decoded as latin-1 (every byte kept)."""
    return exchange(path, data, settle).decode('latin-1')


def record(guest: qga_standin.StandinGuest) -> dict[str, Any]:
    """Run the whole conversation against ``guest``; return the recording."""
    replies: dict[str, Any] = {}
    files: dict[str, Any] = {}
    blocked = sorted(guest.blocked)
    with qga_standin.RawClient(guest.socket, timeout=5.0) as client:
        def ask(command: str, arguments: dict | None = None) -> Any:
            client.send(command, arguments)
            return client.reply()
        for command in sorted(policy.READ_ONLY_COMMANDS - _WITH_ARGUMENTS):
            replies[command] = ask(command)
        replies[blocked[0]] = ask(blocked[0])
        replies['guest-no-such-command'] = ask('guest-no-such-command')
        for path in sorted(policy.READABLE_FILES):
            opened = ask('guest-file-open', {'path': path, 'mode': 'r'})
            handle = opened['return']
            reads = []
            while True:
                reply = ask('guest-file-read',
                            {'handle': handle, 'count': READ_COUNT})
                reads.append(reply)
                if ('error' in reply or len(reads) > 64
                        or (reply['return'].get('eof') and len(reads) > 1
                            and reads[-2]['return'].get('eof'))):
                    break  # the read after eof is recorded too
            closed = ask('guest-file-close', {'handle': handle})
            files[path] = {'open': opened, 'reads': reads, 'close': closed}
    sock = guest.socket
    wire = {
        'ff_then_sync_delimited': _raw(
            sock, b'\xff{"execute": "guest-sync-delimited", '
                  b'"arguments": {"id": 4242}}\n'),
        'id_echo': _raw(
            sock, b'{"execute": "guest-ping", "id": 7}\n'
                  b'{"execute": "guest-ping", "id": "abc"}\n'
                  b'{"execute": "guest-no-such-command", "id": 8}\n'
                  b'{"execute": "guest-sync-delimited", '
                  b'"arguments": {"id": 99}, "id": 9}\n'),
        'sync_without_ff': _raw(
            sock, b'{"execute": "guest-sync", "arguments": {"id": 5}}\n'),
        'parse_error': _raw(sock, b'garbage\n{"execute": "guest-ping"}\n'),
        'read_closed_handle': _raw(
            sock, b'{"execute": "guest-file-read", '
                  b'"arguments": {"handle": 999999, "count": 16}}\n'),
        'ping_with_argument': _raw(
            sock, b'{"execute": "guest-ping", "arguments": {"x": 1}}\n'),
    }
    version = subprocess.run([guest.qemu_ga, '--version'], check=True,
                             capture_output=True, text=True).stdout.strip()
    return {
        'provenance': {
            'agent': version,
            'command_line': guest.argv(),
            'recorded_at': datetime.datetime.now(
                datetime.timezone.utc).isoformat(timespec='seconds'),
            'kernel': platform.release(),
            'recorder': 'tools/record_qga_replies.py',
            'read_count': READ_COUNT,
            'note': 'a real qemu-ga running on the host as a stand-in '
                    'guest (tools/qga_standin.py); it reports the host',
        },
        'replies': replies,
        'files': files,
        'wire': wire,
    }


def main(argv: list[str] | None = None) -> int:
    """Record and write the JSON file; print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='qgarec', dir='/tmp')
    guest = qga_standin.StandinGuest('rec', workdir).start()
    try:
        recording = record(guest)
    finally:
        guest.stop()
        subprocess.run(['rm', '-rf', workdir], check=False)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, 'w') as out:
        # Key order as the agent sent it (json keeps it): the fake replays it.
        json.dump(recording, out, indent=1)
        out.write('\n')
    print(args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
