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
* :meth:`_execute_batch` may send several commands at once (pipelined);
  by default it sends them one after another.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence
import time
from typing import Any

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import policy

#: one request of a batch: command and arguments (None: without)
Request = tuple[str, 'dict[str, Any] | None']

#: told of every command sent: (command, milliseconds, outcome), the
#: outcome 'ok' or the error's ``state``; a batch's commands each get the
#: batch's time
CommandObserver = Callable[[str, float, str], None]


class Transport(abc.ABC):
    """Abstract guest-agent transport for one guest."""

    #: what operators are told the guest is reached through
    kind = 'unknown'
    #: whether :meth:`execute_batch` sends a batch at once (pipelined) or
    #: one command after another
    pipelined = False

    def __init__(self, guest: str, default_timeout: float) -> None:
        self.guest = guest
        self.default_timeout = default_timeout
        self.generation = 0
        #: :data:`CommandObserver` or None (``qga-probe`` times commands)
        self.on_command: CommandObserver | None = None
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
            if self.on_command is None:
                return await self._execute(command, arguments, bound)
            start = time.monotonic()
            outcome = 'ok'
            try:
                return await self._execute(command, arguments, bound)
            except errors.QgaError as exc:
                outcome = exc.state
                raise
            finally:
                self.on_command(command, (time.monotonic() - start) * 1000,
                                outcome)

    async def execute_batch(self, requests: Sequence[Request],
                            timeout: float | None = None) -> list[Any]:
        """Run several read-only commands; one result per request, in order.

        A result is the command's ``return`` value or the
        :class:`~ceilometer_qga.qga.errors.QgaError` it failed with.  Once
        the agent is unreachable (:data:`~ceilometer_qga.qga.errors.
        UNREACHABLE`), that error is the result of every request left.
        Every command is checked against the allow-list before any is sent.

        :param timeout: seconds for each reply (the default timeout if None)
        :raises errors.CommandForbidden: one of them is not read-only
        """
        for command, arguments in requests:
            policy.check(self.guest, command, arguments)
        if not requests:
            return []
        bound = self.default_timeout if timeout is None else timeout
        async with self._lock:
            start = time.monotonic()
            results = await self._execute_batch(requests, bound)
        if self.on_command is not None:
            ms = (time.monotonic() - start) * 1000
            for (command, _arguments), result in zip(requests, results):
                self.on_command(command, ms, result.state if isinstance(
                    result, errors.QgaError) else 'ok')
        return results

    async def _execute_batch(self, requests: Sequence[Request],
                             timeout: float) -> list[Any]:
        """One after another; transports that can pipeline override it."""
        results: list[Any] = []
        for index, (command, arguments) in enumerate(requests):
            try:
                results.append(await self._execute(command, arguments,
                                                   timeout))
            except errors.UNREACHABLE as exc:
                results.extend([exc] * (len(requests) - index))
                break
            except errors.QgaError as exc:
                results.append(exc)
        return results

    def new_sweep(self) -> None:
        """A new sweep starts: forget what is only valid for one sweep.

        The session calls it before the sweep's first command.  A transport
        that caches nothing per sweep does nothing.
        """

    @abc.abstractmethod
    async def _execute(self, command: str, arguments: dict[str, Any] | None,
                       timeout: float) -> Any:
        """Send one already-checked command; see the module docstring."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Drop the connection; the next execute reconnects."""
