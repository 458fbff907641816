"""A qga client built on QEMU's ``qemu.qmp`` library, for ``make bench``.

The prototype that issue 11 asked for: ``QMPClient`` with the agent's
handshake in :meth:`QgaQmpClient._establish_session` (0xFF to reset the
agent's parser, ``guest-sync-delimited`` with a random id, everything up to
the 0xFF sentinel and every reply without our id discarded), after which
``qemu.qmp``'s own reader task routes replies by ``id`` (qemu-ga 7.2 echoes
it) and drops unknown ones (``qmp_client.py`` ``_on_message``).

``tools/bench.py`` measures its ``guest-ping`` latency against
``ceilometer_qga.qga.transport_socket.SocketTransport``; the poller keeps
its own transport, for the reasons and numbers in that module's docstring.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from qemu.qmp import QMPClient


class QgaQmpClient(QMPClient):
    """``QMPClient`` for qemu-ga: no greeting, no negotiation, 0xFF sync."""

    def __init__(self, name: str = 'qga', sync_timeout: float = 5.0,
                 max_bytes: int = 1 << 20) -> None:
        super().__init__(name)
        self.await_greeting = False
        self.negotiate = False
        self.sync_timeout = sync_timeout
        self.max_bytes = max_bytes

    async def _establish_session(self) -> None:
        """Synchronise with the agent before the reader task starts."""
        assert self._reader is not None and self._writer is not None
        sync_id = random.SystemRandom().randrange(1, 2 ** 53)
        request = {'execute': 'guest-sync-delimited',
                   'arguments': {'id': sync_id}}
        self._writer.write(b'\xff' + json.dumps(request).encode() + b'\n')
        await asyncio.wait_for(self._await_sync(sync_id), self.sync_timeout)
        await super()._establish_session()

    async def _await_sync(self, sync_id: int) -> None:
        assert self._reader is not None
        seen = 0
        while True:
            skipped = await self._reader.readuntil(b'\xff')
            line = await self._reader.readline()
            seen += len(skipped) + len(line)
            if seen > self.max_bytes:
                raise ConnectionError('no sync reply within %d bytes'
                                      % self.max_bytes)
            try:
                reply = json.loads(line)
            except ValueError:
                continue  # noise after a sentinel: keep looking
            if isinstance(reply, dict) and reply.get('return') == sync_id:
                return

    async def call(self, command: str,
                   arguments: dict[str, Any] | None = None) -> Any:
        """One command; its ``return`` value (``ExecuteError`` on error)."""
        return await self.execute(command, arguments)
