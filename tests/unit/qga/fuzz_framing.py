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

"""``make fuzz``: the socket transport's framing under atheris (libFuzzer).

Each input is the byte stream an agent sends on a fresh connection.  The
harness (:func:`check_stream`) gives it to a real
:class:`~ceilometer_qga.qga.transport_socket.SocketTransport` through its
reader -- an ``asyncio.StreamReader`` fed with the bytes, then EOF -- and
runs ``guest-ping`` then ``guest-info``.  The writer side only collects
what the transport sends (nothing reads it: the stream is fixed in
advance), and the sync id is fixed at 42 so that the fuzzer can reach the
code past the handshake (the dictionary has ``{"return": 42}``).  The
framing is taken as learnt (the probe of a new connection is covered by
``tests/unit/qga/test_framing_properties.py``): ids (qemu-ga 4.0 and
later), or, for an input that starts with ``O``, replies in order (an
agent before 4.0; the ``O`` is not part of the stream).

What must hold for every input (else atheris reports a crash and saves
the input under ``build/fuzz/``):

* ``execute`` returns or raises a ``QgaError``, nothing else;
* an error's text stays under 1000 characters (it is logged);
* a protocol error never leaves the connection half-read: it is closed
  (garbage, EOF, over the byte cap) or, when the bad reply was a whole
  line (``{"error": [...]}``), still in sync.

A crash becomes a test: copy the saved input into
``tests/unit/qga/fuzz_inputs/`` (``tests/unit/qga/test_fuzz_inputs.py``
replays every file there through :func:`check_stream`, with the seeds
this tool writes).

Environment: ``FUZZ_SECONDS`` (default 120).  Extra arguments go to
libFuzzer (``-jobs=2``, ``-runs=N``...).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

SYNC_ID = 42
MAX_REPLY = 4096
OUT = os.path.join(ROOT, 'build', 'fuzz')
SEEDS = {
    'ok': (b'\xff{"return": 42}\n{"return": {}, "id": 1}\n'
           b'{"return": {"version": "7.2", "supported_commands": []},'
           b' "id": 2}\n'),
    'noise-first': (b'garbage\x00\xfe\xff{"return": 7}\n\xff{"return": 42}\n'
                    b'{"return": 1, "id": 9}\n{"return": {}, "id": 1}\n'),
    'error': b'\xff{"return": 42}\n{"error": {"class": "X", "desc": "y"}}\n',
    'deep': b'\xff{"return": 42}\n' + b'[' * 5000 + b'\n',
    'order': (b'O\xff{"return": 42}\n{"return": {}}\n'
              b'{"return": {"version": "2.5.0", "supported_commands": []}}\n'),
}
DICTIONARY = ['"\\xff"', '"\\x0a"', '"{\\"return\\": 42}"', '"\\"id\\": 1"',
              '"\\"id\\": 2"', '"{\\"error\\": "', '"\\"class\\""',
              '"\\"desc\\""', '"frozen state"', '"has been disabled"']


class _CollectingWriter:
    """The write half: keeps what the transport sends; nothing reads it."""

    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


class _FixedRandom:
    """``randrange`` that always gives the sync id the stream can carry."""

    def randrange(self, *_args: Any) -> int:
        return SYNC_ID


def _transport(data: bytes):
    from ceilometer_qga.qga import transport_socket

    framing = transport_socket.Framing.IDS
    if data[:1] == b'O':
        framing, data = transport_socket.Framing.ORDER, data[1:]
    transport = transport_socket.SocketTransport(
        'fuzz', '/nonexistent', 10.0, MAX_REPLY)
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    transport._reader = reader
    transport._writer = _CollectingWriter()
    transport._random = _FixedRandom()
    transport.state = transport_socket.State.UNSYNCED
    transport.framing = framing
    return transport


async def _run(data: bytes) -> list[Any]:
    from ceilometer_qga.qga import errors
    from ceilometer_qga.qga import transport_socket

    transport = _transport(data)
    outcomes = []
    for command in ('guest-ping', 'guest-info'):
        if transport.state is transport_socket.State.DISCONNECTED:
            break  # a reconnect would need a real socket
        try:
            outcomes.append(await transport.execute(command))
        except errors.QgaError as exc:
            text = str(exc)
            if len(text) >= 1000:
                raise AssertionError('error text of %d chars' % len(text))
            if (isinstance(exc, errors.ProtocolError)
                    and transport.state
                    is transport_socket.State.UNSYNCED):
                raise AssertionError('%r left the connection %s'
                                     % (exc, transport.state))
            outcomes.append(exc)
    return outcomes


_LOOP: asyncio.AbstractEventLoop | None = None


def check_stream(data: bytes) -> list[Any]:
    """Run the two commands over ``data``; raises if a property fails.

    :returns: each command's result or QgaError
    """
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    return _LOOP.run_until_complete(_run(data))


def write_seeds(corpus: str) -> None:
    """The seed inputs, and the libFuzzer dictionary next to them."""
    os.makedirs(corpus, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(corpus, 'seed-' + name), 'wb') as f:
            f.write(data)
    with open(os.path.join(OUT, 'framing.dict'), 'w') as f:
        f.write('\n'.join(DICTIONARY) + '\n')


def main() -> int:
    import atheris

    with atheris.instrument_imports():
        from ceilometer_qga.qga import errors  # noqa: F401
        from ceilometer_qga.qga import transport_socket  # noqa: F401

    seconds = int(os.environ.get('FUZZ_SECONDS', 120))
    corpus = os.path.join(OUT, 'corpus')
    write_seeds(corpus)
    argv = [sys.argv[0], '-max_total_time=%d' % seconds,
            '-artifact_prefix=%s/' % OUT, '-dict=%s' % os.path.join(
                OUT, 'framing.dict'),
            '-max_len=%d' % (3 * MAX_REPLY), '-timeout=10',
            *sys.argv[1:], corpus]
    print('fuzz: framing for %d s; crashes go to %s/' % (seconds, OUT),
          flush=True)
    atheris.Setup(argv, lambda data: check_stream(bytes(data)))
    atheris.Fuzz()
    return 0


if __name__ == '__main__':
    sys.exit(main())
