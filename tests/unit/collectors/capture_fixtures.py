"""Capture the real qemu-ga replies that the collector tests parse.

Not a test: run it by hand against a stand-in guest to refresh
``data/``::

    mkdir -p /tmp/cap/state
    qemu-ga -m unix-listen -p /tmp/cap/qga.sock -t /tmp/cap/state \\
        -b guest-shutdown,guest-set-time,guest-exec,guest-file-write &
    python tests/unit/collectors/capture_fixtures.py /tmp/cap/qga.sock
    kill $!

Standard library only, so that it runs anywhere qemu-ga does.  Every reply
is read before the connection closes: qemu-ga 7.2 exits when a client
leaves with a reply unread.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')

COMMANDS = {
    'fsinfo': 'guest-get-fsinfo',
    'cpustats': 'guest-get-cpustats',
    'diskstats': 'guest-get-diskstats',
    'network': 'guest-network-get-interfaces',
    'users': 'guest-get-users',
    'vcpus': 'guest-get-vcpus',
    'osinfo': 'guest-get-osinfo',
    'hostname': 'guest-get-host-name',
}

FILES = {
    'meminfo.txt': '/proc/meminfo',
    'stat.txt': '/proc/stat',
    'loadavg.txt': '/proc/loadavg',
    'diskstats.txt': '/proc/diskstats',
    'net_dev.txt': '/proc/net/dev',
    'mounts.txt': '/proc/mounts',
}


class Agent:
    """A minimal synchronous qga client (one connection)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5.0)
        self.sock.connect(path)
        self.buf = b''

    def _line(self) -> bytes:
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('agent closed the connection')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line

    def sync(self) -> None:
        """0xFF + guest-sync-delimited; skip everything up to the 0xFF."""
        sync_id = random.randint(1, 2 ** 31 - 1)
        self.sock.sendall(b'\xff' + json.dumps(
            {'execute': 'guest-sync-delimited',
             'arguments': {'id': sync_id}}).encode() + b'\n')
        while b'\xff' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('agent closed the connection during sync')
            self.buf += chunk
        self.buf = self.buf.split(b'\xff', 1)[1]
        while json.loads(self._line()).get('return') != sync_id:
            pass

    def cmd(self, name: str, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        reply = json.loads(self._line())
        if 'error' in reply:
            raise RuntimeError('%s: %s' % (name, reply['error']))
        return reply['return']

    def read_file(self, path: str) -> bytes:
        handle = self.cmd('guest-file-open', path=path, mode='r')
        data = b''
        try:
            while True:
                chunk = self.cmd('guest-file-read', handle=handle,
                                 count=65536)
                data += base64.b64decode(chunk['buf-b64'])
                if chunk.get('eof') or chunk['count'] == 0:
                    break
        finally:
            self.cmd('guest-file-close', handle=handle)
        return data

    def close(self) -> None:
        self.sock.close()


def main(path: str) -> None:
    agent = Agent(path)
    try:
        agent.sync()
        for stem, command in COMMANDS.items():
            with open(os.path.join(DATA, stem + '.json'), 'w') as out:
                json.dump(agent.cmd(command), out, indent=1, sort_keys=True)
                out.write('\n')
        # cpustats and /proc/stat back to back, so that the test comparing
        # them needs only a small tolerance.
        pair = {'cpustats': agent.cmd('guest-get-cpustats'),
                'stat': agent.read_file('/proc/stat').decode()}
        with open(os.path.join(DATA, 'cpu_pair.json'), 'w') as out:
            json.dump(pair, out, indent=1, sort_keys=True)
            out.write('\n')
        # Native replies and the /proc files of their fallbacks back to
        # back, so that the tests can compare the two sources.
        for stem, command, proc_path in (
                ('disk_pair', 'guest-get-diskstats', '/proc/diskstats'),
                ('net_pair', 'guest-network-get-interfaces', '/proc/net/dev')):
            pair = {'native': agent.cmd(command),
                    'file': agent.read_file(proc_path).decode()}
            with open(os.path.join(DATA, stem + '.json'), 'w') as out:
                json.dump(pair, out, indent=1, sort_keys=True)
                out.write('\n')
        for name, proc_path in FILES.items():
            with open(os.path.join(DATA, name), 'wb') as out:
                out.write(agent.read_file(proc_path))
    finally:
        agent.close()


if __name__ == '__main__':
    main(sys.argv[1])
