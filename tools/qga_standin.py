#!/usr/bin/env python3
"""Real ``qemu-ga`` processes on unix sockets, standing in for guests.

The poller talks to the QEMU guest agent of each instance.  On a host with
no virtual machines, the Debian ``qemu-guest-agent`` binary can run as a
plain process in ``unix-listen`` mode: it then answers for the host itself
exactly as it would inside a guest (same code, same replies, same quirks).
The demo and the functional tests use such stand-ins.

Every stand-in is started as::

    qemu-ga -m unix-listen -p SOCK -t STATEDIR -b BLOCKED

where ``BLOCKED`` is every command this ``qemu-ga`` knows (``qemu-ga -b
help``) that is not on the poller's read-only allow-list
(:data:`ceilometer_qga.qga.policy.READ_ONLY_COMMANDS`), plus any extra
commands the caller blocks: a stand-in running as root on the host must never
execute, write files, freeze filesystems or shut anything down.

qemu-ga 7.2 exits when a client disconnects while a reply is still unread in
its socket, so each stand-in runs under a supervisor thread that starts it
again (with a back-off when it keeps dying at once).  Each agent is its own
process group; stopping a stand-in stops it by pid.  Stand-ins that are still
running when the interpreter exits are stopped by an ``atexit`` hook, and
each agent is started through ``setpriv --pdeathsig`` (when available) so
that it dies with its supervisor even when Python is killed outright.

Library use::

    with StandinFleet(3) as fleet:
        for guest in fleet:
            print(guest.name, guest.socket, guest.pid)

Command line (runs until SIGINT/SIGTERM)::

    python tools/qga_standin.py --count 3 [--workdir DIR] [--block CMD,...]
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

try:
    from ceilometer_qga.qga import policy
except ImportError:  # run from a checkout where the package is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from ceilometer_qga.qga import policy

try:
    from tools import processes
except ImportError:  # run as a script: tools/ is the script's directory
    import processes  # type: ignore[no-redef]

QEMU_GA = 'qemu-ga'

#: a stand-in that dies sooner than this after its start counts as failing
#: at once, and the supervisor backs off before the next start
_QUICK_DEATH = 1.0
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0
#: consecutive quick deaths after which the supervisor gives up
_MAX_QUICK_DEATHS = 20

_live_guests: weakref.WeakSet[StandinGuest] = weakref.WeakSet()


class StandinError(RuntimeError):
    """A stand-in guest could not be started or did not answer in time."""


class RawClient:
    """A minimal blocking qga client on a unix socket, standard library only.

    Used to check readiness and by tests that want to see the wire as it
    is.  It does what every qga client must do after connecting: send 0xFF
    (which resets the agent's JSON parser), ``guest-sync-delimited`` with a
    random id, and skip everything up to the 0xFF that precedes the reply
    with that id.  Always read every reply before closing: qemu-ga 7.2 exits
    when a client leaves with a reply unread.
    """

    def __init__(self, path: str, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buf = b''

    def __enter__(self) -> RawClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Connect and synchronise; raises OSError or ValueError."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock, self._buf = sock, b''
        self.sync()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError('agent closed the connection')
        self._buf += chunk

    def _line(self) -> bytes:
        while b'\n' not in self._buf:
            self._recv()
        line, self._buf = self._buf.split(b'\n', 1)
        return line

    def sync(self) -> int:
        """Send 0xFF + guest-sync-delimited and consume up to its reply."""
        assert self.sock is not None
        sync_id = random.randint(1, 2 ** 31 - 1)
        request = {'execute': 'guest-sync-delimited', 'arguments': {'id': sync_id}}
        self.sock.sendall(b'\xff' + json.dumps(request).encode() + b'\n')
        while True:
            while b'\xff' not in self._buf:
                self._recv()
            self._buf = self._buf.split(b'\xff', 1)[1]
            reply = json.loads(self._line())
            if reply.get('return') == sync_id:
                return sync_id

    def send(self, command: str, arguments: dict[str, Any] | None = None) -> None:
        """Send one command without waiting for its reply."""
        assert self.sock is not None
        msg: dict[str, Any] = {'execute': command}
        if arguments is not None:
            msg['arguments'] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b'\n')

    def reply(self) -> dict[str, Any]:
        """Read the next reply object (``return`` or ``error``)."""
        return json.loads(self._line())

    def call(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one command; return its ``return`` value.

        :raises RuntimeError: the agent answered with an error object
        """
        self.send(command, arguments)
        reply = self.reply()
        if 'error' in reply:
            raise RuntimeError('%s: %s' % (command, reply['error']))
        return reply['return']


def answers(path: str, timeout: float = 1.0) -> bool:
    """True when the agent on ``path`` completes a guest-sync-delimited."""
    try:
        with RawClient(path, timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def known_commands(qemu_ga: str = QEMU_GA) -> tuple[str, ...]:
    """Every RPC this ``qemu-ga`` binary knows, from ``qemu-ga -b help``."""
    out = subprocess.run([qemu_ga, '-b', 'help'], check=True, capture_output=True,
                         text=True, timeout=10).stdout
    names = tuple(line.strip() for line in out.splitlines() if line.strip())
    if 'guest-ping' not in names:
        raise StandinError('unexpected output of %s -b help: %r' % (qemu_ga, out[:200]))
    return names


def block_list(extra: Iterable[str] = (), qemu_ga: str = QEMU_GA) -> list[str]:
    """Commands to pass to ``-b``: all that are not read-only, plus ``extra``."""
    blocked = {c for c in known_commands(qemu_ga) if c not in policy.READ_ONLY_COMMANDS}
    blocked.update(extra)
    return sorted(blocked)


class StandinGuest:
    """One supervised ``qemu-ga`` on a unix socket in ``workdir``.

    :param name: label; the socket is ``workdir/NAME.sock``
    :param workdir: existing directory; keep its path short (unix socket
        paths are limited to 108 bytes)
    :param extra_block: commands to block on top of the non-read-only ones
    """

    def __init__(self, name: str, workdir: str, extra_block: Iterable[str] = (),
                 qemu_ga: str = QEMU_GA) -> None:
        self.name = name
        self.workdir = workdir
        self.socket = os.path.join(workdir, name + '.sock')
        self.statedir = os.path.join(workdir, name + '.state')
        self.logfile = os.path.join(workdir, name + '.log')
        if len(self.socket.encode()) >= 108:
            raise StandinError('socket path too long for AF_UNIX: %s' % self.socket)
        self.qemu_ga = shutil.which(qemu_ga) or qemu_ga
        self.blocked = tuple(block_list(extra_block, self.qemu_ga))
        #: every pid this stand-in ever ran, oldest first
        self.pids: list[int] = []
        #: how many times the supervisor started the agent again
        self.restarts = 0
        self.failure: str | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return '<StandinGuest %s pid=%s %s>' % (self.name, self.pid, self.socket)

    @property
    def pid(self) -> int | None:
        """Pid of the agent running now, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def argv(self) -> list[str]:
        """The ``qemu-ga`` command line of this stand-in."""
        argv = [self.qemu_ga, '-m', 'unix-listen', '-p', self.socket,
                '-t', self.statedir, '-b', ','.join(self.blocked)]
        setpriv = shutil.which('setpriv')
        if setpriv:
            # The agent dies with the supervisor thread even if Python is
            # SIGKILLed and never runs its own cleanup.
            argv = [setpriv, '--pdeathsig', 'TERM', '--'] + argv
        return argv

    def launch(self) -> None:
        """Start the supervisor (and so the agent) without waiting for it."""
        if self._thread is not None:
            raise StandinError('%s already started' % self.name)
        os.makedirs(self.statedir, exist_ok=True)
        self._thread = threading.Thread(target=self._supervise, daemon=True,
                                        name='qga-standin-%s' % self.name)
        _live_guests.add(self)
        self._thread.start()

    def start(self, timeout: float = 10.0) -> StandinGuest:
        """Start the supervisor and wait until the agent answers a sync."""
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll until the agent answers guest-sync-delimited, within ``timeout``.

        :raises StandinError: no answer in time, or the supervisor gave up
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.failure:
                raise StandinError('%s: %s\n%s' % (self.name, self.failure, self.log_tail()))
            if self.pid is not None and answers(self.socket, timeout=1.0):
                return
            if time.monotonic() >= deadline:
                raise StandinError('%s: no answer on %s within %.1fs\n%s'
                                   % (self.name, self.socket, timeout, self.log_tail()))
            time.sleep(0.02)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the agent wrote to its log, for error messages."""
        try:
            with open(self.logfile, errors='replace') as log:
                return ''.join(log.readlines()[-lines:])
        except OSError:
            return ''

    def _spawn(self) -> subprocess.Popen | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            with open(self.logfile, 'ab') as log:
                self._proc = subprocess.Popen(
                    self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True, close_fds=True)
            self.pids.append(self._proc.pid)
            return self._proc

    def _supervise(self) -> None:
        backoff = _BACKOFF_FIRST
        quick_deaths = 0
        while True:
            try:
                proc = self._spawn()
            except OSError as exc:
                self.failure = 'cannot run %s: %s' % (self.qemu_ga, exc)
                return
            if proc is None:
                return
            started = time.monotonic()
            proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started < _QUICK_DEATH:
                quick_deaths += 1
                if quick_deaths >= _MAX_QUICK_DEATHS:
                    self.failure = ('qemu-ga exited %d times in a row right after '
                                    'starting (last rc %s)' % (quick_deaths, proc.returncode))
                    return
                # Event.wait: a stop() during the back-off ends it at once.
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, _BACKOFF_MAX)
            else:
                quick_deaths, backoff = 0, _BACKOFF_FIRST
            self.restarts += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the supervisor and the agent (by pid, TERM then KILL)."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None:
            processes.stop_process(proc, timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        _live_guests.discard(self)
        # qemu-ga leaves its socket file behind on SIGTERM.
        try:
            os.unlink(self.socket)
        except OSError:
            pass


class StandinFleet:
    """Several stand-in guests in one work directory; a context manager.

    :param count: number of guests named ``guest1``... (ignored if ``names``)
    :param workdir: directory to use; by default a new short one under /tmp
        that is removed again on :meth:`stop`
    :param extra_block: per-guest extra blocked commands, by guest name
    """

    def __init__(self, count: int = 3, workdir: str | None = None,
                 names: Iterable[str] | None = None,
                 extra_block: dict[str, Iterable[str]] | None = None,
                 qemu_ga: str = QEMU_GA) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix='qga', dir='/tmp')
        names = list(names) if names is not None else [
            'guest%d' % i for i in range(1, count + 1)]
        extra_block = extra_block or {}
        self.guests = [StandinGuest(n, self.workdir, extra_block.get(n, ()), qemu_ga)
                       for n in names]

    def __iter__(self) -> Iterator[StandinGuest]:
        return iter(self.guests)

    def __len__(self) -> int:
        return len(self.guests)

    def __getitem__(self, index: int) -> StandinGuest:
        return self.guests[index]

    def __enter__(self) -> StandinFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> StandinFleet:
        """Start every guest, then wait for all of them to answer."""
        try:
            for guest in self.guests:
                # All agents boot in parallel; then wait for each.
                guest.launch()
            for guest in self.guests:
                guest.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every guest by pid; remove the work dir if the fleet made it."""
        for guest in self.guests:
            guest.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


@atexit.register
def _stop_leftovers() -> None:
    for guest in list(_live_guests):
        guest.stop()


def main(argv: list[str] | None = None) -> int:
    """Run stand-in guests until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--count', type=int, default=3)
    parser.add_argument('--workdir', help='directory for sockets and state '
                        '(default: a new one under /tmp, removed on exit)')
    parser.add_argument('--block', default='',
                        help='comma-separated commands to block on every guest, '
                             'on top of the non-read-only ones')
    args = parser.parse_args(argv)
    extra = [c for c in args.block.split(',') if c]
    names = ['guest%d' % i for i in range(1, args.count + 1)]
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    fleet = StandinFleet(workdir=args.workdir, names=names,
                         extra_block={n: extra for n in names})
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with fleet:
        for guest in fleet:
            print('%s %s pid %s' % (guest.name, guest.socket, guest.pid), flush=True)
        stop.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
