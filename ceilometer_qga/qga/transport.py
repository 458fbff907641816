"""The one interface every way of reaching a guest agent implements.

A transport carries qga commands to one guest and brings the replies back.
Callers (the guest session, ``qga-probe``) use only this class; they never
import a concrete transport module (choose one with :func:`make_transport`).

Contract for implementations:

* :meth:`_execute` sends one command and returns the ``return`` member of
  the reply, or raises a :mod:`~ceilometer_qga.qga.errors` class.  It must
  finish within ``timeout`` seconds whatever the guest does.
* Calls on one transport are never concurrent (:meth:`execute` serialises
  them): qga is single-client and single-threaded.
* :attr:`generation` grows by one on every new connection to the agent, so
  that callers can tell that the agent may have restarted and re-read its
  capabilities.
* :meth:`close` releases everything and may be called more than once.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from ceilometer_qga.qga import policy


class Transport(abc.ABC):
    """Abstract guest-agent transport for one guest."""

    #: what operators are told the guest is reached through
    kind = 'unknown'

    def __init__(self, guest: str, default_timeout: float) -> None:
        self.guest = guest
        self.default_timeout = default_timeout
        self.generation = 0
        self._lock = asyncio.Lock()

    async def execute(self, command: str,
                      arguments: dict[str, Any] | None = None,
                      timeout: float | None = None) -> Any:
        """Run one read-only qga command and return its ``return`` value.

        :raises errors.CommandForbidden: the command is not read-only
        :raises errors.QgaError: any other failure, typed (see errors)
        """
        policy.check(self.guest, command, arguments)
        bound = self.default_timeout if timeout is None else timeout
        async with self._lock:
            return await self._execute(command, arguments, bound)

    @abc.abstractmethod
    async def _execute(self, command: str, arguments: dict[str, Any] | None,
                       timeout: float) -> Any:
        """Send one already-checked command; see the module docstring."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Drop the connection; the next execute reconnects."""
