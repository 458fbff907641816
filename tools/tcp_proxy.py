#!/usr/bin/env python3
"""A TCP proxy that can be cut, restored, paused and resumed: a broker fault.

Put between a client (``qga-polling``'s notifier) and a real server
(RabbitMQ on 127.0.0.1:5672), it forwards bytes both ways until told
otherwise:

``cut()``
    closes every proxied connection (both sides) and stops listening, so
    new connections are refused (``ECONNREFUSED``), as when the broker or
    the network is down;
``restore()``
    listens again on the same port;
``pause()``
    keeps every connection open and accepts new ones, but forwards nothing
    (bytes stay in the kernel's buffers): a hung broker or a black-holed
    network, where the client only notices through its own timeouts;
``resume()``
    forwards again, including what was held.

Library use (``make soak`` and tests)::

    with TcpProxy('127.0.0.1', 5672) as proxy:
        url = 'rabbit://guest:guest@127.0.0.1:%d/' % proxy.port
        proxy.cut(); ...; proxy.restore()

Command line (runs until SIGINT/SIGTERM; SIGUSR1 toggles cut/restore,
SIGUSR2 toggles pause/resume; each change is printed)::

    python tools/tcp_proxy.py --target 127.0.0.1:5672 [--listen 127.0.0.1:0]

Threads only, one pair per connection; every socket operation has a short
timeout so that a state change takes effect within ``POLL`` seconds.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from typing import Any

#: seconds between two looks at the state in the forwarding loops
POLL = 0.1
CHUNK = 65536


class TcpProxy:
    """A cuttable, pausable TCP forwarder on ``listen_host:listen_port``.

    :param listen_port: 0 picks a free port once; it is kept across cuts
    """

    def __init__(self, target_host: str, target_port: int,
                 listen_host: str = '127.0.0.1', listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = listen_port
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._stopped = threading.Event()
        self._accept_thread: threading.Thread | None = None
        #: connections accepted, cuts made, bytes forwarded each way
        self.stats = {'connections': 0, 'cuts': 0, 'pauses': 0,
                      'bytes_up': 0, 'bytes_down': 0}

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state(self) -> str:
        """``open``, ``cut`` or ``paused``."""
        if self._listener is None:
            return 'cut'
        return 'open' if self._forwarding.is_set() else 'paused'

    def start(self) -> TcpProxy:
        """Listen and start accepting."""
        self._listen()
        return self

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.listen_host, self.port))
        sock.listen(64)
        sock.settimeout(POLL)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._accept_thread = threading.Thread(
            target=self._accept, args=(sock,), name='tcp-proxy-accept',
            daemon=True)
        self._accept_thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _addr = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            pair = (client, server)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._pairs.add(pair)
                self.stats['connections'] += 1
            for src, dst, key in ((client, server, 'bytes_up'),
                                  (server, client, 'bytes_down')):
                threading.Thread(target=self._pump,
                                 args=(pair, src, dst, key),
                                 name='tcp-proxy-pump', daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket],
              src: socket.socket, dst: socket.socket, key: str) -> None:
        src.settimeout(POLL)
        try:
            while pair in self._pairs:
                if not self._forwarding.wait(POLL):
                    continue  # paused: read nothing, the bytes wait
                try:
                    data = src.recv(CHUNK)
                except socket.timeout:
                    continue
                if not data:
                    break
                dst.sendall(data)
                with self._lock:
                    self.stats[key] += len(data)
        except OSError:
            pass
        finally:
            self._drop(pair)

    def _drop(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self._pairs.discard(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self) -> None:
        """Close every connection and refuse new ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs = list(self._pairs)
            self.stats['cuts'] += 1
        if listener is not None:
            listener.close()
        for pair in pairs:
            self._drop(pair)
        if self._accept_thread is not None:
            self._accept_thread.join(2)

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self._listener is None and not self._stopped.is_set():
            self._listen()

    def pause(self) -> None:
        """Keep connections open but forward nothing (a hung broker)."""
        self.stats['pauses'] += 1
        self._forwarding.clear()

    def resume(self) -> None:
        """Forward again, what was held included."""
        self._forwarding.set()

    def stop(self) -> None:
        """Close everything; the proxy cannot be restored afterwards."""
        self._stopped.set()
        self._forwarding.set()
        self.cut()
        self.stats['cuts'] -= 1  # not a fault, the end


def _address(text: str) -> tuple[str, int]:
    host, _sep, port = text.rpartition(':')
    try:
        return host or '127.0.0.1', int(port)
    except ValueError:
        raise argparse.ArgumentTypeError('%r: expected HOST:PORT' % text)


def main(argv: list[str] | None = None) -> int:
    """Run a proxy until SIGINT/SIGTERM; SIGUSR1/SIGUSR2 inject faults."""
    parser = argparse.ArgumentParser(prog='tcp_proxy',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--target', type=_address, required=True,
                        help='HOST:PORT to forward to')
    parser.add_argument('--listen', type=_address,
                        default=('127.0.0.1', 0),
                        help='HOST:PORT to listen on (port 0: any free one)')
    args = parser.parse_args(argv)
    proxy = TcpProxy(*args.target, *args.listen).start()
    done = threading.Event()

    def toggle_cut(*_: Any) -> None:
        proxy.restore() if proxy.state == 'cut' else proxy.cut()
        print('state: %s' % proxy.state, flush=True)

    def toggle_pause(*_: Any) -> None:
        proxy.resume() if proxy.state == 'paused' else proxy.pause()
        print('state: %s' % proxy.state, flush=True)

    signal.signal(signal.SIGUSR1, toggle_cut)
    signal.signal(signal.SIGUSR2, toggle_pause)
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print('listening on %s:%d -> %s:%d' % (proxy.listen_host, proxy.port,
                                           *args.target), flush=True)
    while not done.wait(1):
        pass
    proxy.stop()
    print('stopped: %s' % proxy.stats, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
