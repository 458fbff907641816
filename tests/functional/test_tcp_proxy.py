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

"""``tests/fixtures/tcp_proxy.py`` between a real client and a real TCP server.

The server is a small echo server on loopback; the proxy is the tool the
soak (``make soak``) and broker-fault tests put in front of RabbitMQ.
"""

import socket
import threading
import time

import pytest

from tests.fixtures.tcp_proxy import TcpProxy


@pytest.fixture
def echo_server():
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn):
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    listener.close()


def roundtrip(port, data=b'ping', timeout=2.0):
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
        s.sendall(data)
        return s.recv(4096)


def test_forwards_cuts_restores_pauses_and_resumes(echo_server):
    with TcpProxy('127.0.0.1', echo_server) as proxy:
        port = proxy.port
        assert roundtrip(port) == b'ping'

        held = socket.create_connection(('127.0.0.1', port), timeout=2)
        held.sendall(b'a')
        assert held.recv(10) == b'a'
        proxy.cut()
        assert proxy.state == 'cut'
        # the open connection is closed, new ones are refused
        held.settimeout(2)
        assert held.recv(10) == b''
        held.close()
        with pytest.raises(ConnectionRefusedError):
            roundtrip(port)

        proxy.restore()
        assert proxy.state == 'open' and proxy.port == port
        assert roundtrip(port) == b'ping'

        conn = socket.create_connection(('127.0.0.1', port), timeout=2)
        proxy.pause()
        conn.sendall(b'held')
        conn.settimeout(0.5)
        with pytest.raises(socket.timeout):
            conn.recv(10)  # a hung broker: open, silent
        proxy.resume()
        conn.settimeout(2)
        deadline = time.monotonic() + 2
        got = b''
        while got != b'held' and time.monotonic() < deadline:
            got += conn.recv(10)
        assert got == b'held'
        conn.close()
        assert proxy.stats['cuts'] == 1 and proxy.stats['pauses'] == 1


def test_a_pump_whose_pair_was_already_dropped_returns_quietly():
    """Each connection has two pump threads; when the first sees end of
    stream at once it drops the pair, closing both sockets, before the
    second thread has run.  That second pump must end without raising
    (an EBADF from its first socket call was a thread exception in a busy
    ``make test``).
    """
    proxy = TcpProxy('127.0.0.1', 9)
    first, second = socket.socketpair()
    pair = (first, second)
    proxy._pairs.add(pair)
    proxy._drop(pair)

    errors = []
    thread = threading.Thread(
        target=lambda: _record(errors, proxy._pump, pair, second, first,
                               'bytes_down'))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert errors == []
    assert proxy.stats['bytes_down'] == 0


def _record(errors, fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # the thread's exception, for the assertion
        errors.append(exc)
