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

"""What one guest's sweep asks up front, in one batch, after the ping.

Once the capabilities are known (cached, or read after the ping), every
command of the sweep that does not depend on another reply is known too:
``guest-fsfreeze-status``, the native command of each due collector the
agent offers, and ``guest-file-open`` of each ``/proc`` file a due
collector will read instead -- all read off the sweep's plan
(:func:`ceilometer_qga.engine.plan`), which the engine then follows.  They go out together
(:meth:`~ceilometer_qga.qga.transport.Transport.execute_batch`, pipelined
on the socket transport), and the opened files are read and closed
together (:func:`~ceilometer_qga.qga.guest_file.read_opened`).  On qemu-ga
7.2 that is 4 writes per guest per sweep instead of 14 round trips.

The collectors then run as before, through the engine, and take these
results -- value or error -- as if they had sent the commands themselves
(:meth:`Prefetched.execute`, :meth:`Prefetched.read_file`); anything else
(an old agent's fallback after an incomplete native reply, the per-item
``guest-get-statvfs``) is sent then, one command at a time.

While the guest is frozen, qemu-ga refuses the data commands of the batch
("has been disabled: the agent is in frozen state") and opens no file; the
session then drops every result but the freeze status.  A transport that
sends one command at a time anyway (libvirt) asks the freeze status first
and sends nothing more to a frozen guest.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga import engine
from ceilometer_qga import freeze
from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import guest_file
from ceilometer_qga.qga import transport as transport_mod


class Prefetched:
    """The batch's results: freeze status, native replies, file texts."""

    def __init__(self, transport: transport_mod.Transport) -> None:
        self.transport = transport
        #: the ``guest-fsfreeze-status`` result (value or error); None when
        #: it was not asked
        self.freeze_status: Any = None
        #: native command -> its ``return`` value or error
        self.replies: dict[str, Any] = {}
        #: /proc path -> its text or error
        self.files: dict[str, Any] = {}

    async def execute(self, command: str,
                      arguments: dict[str, Any] | None = None) -> Any:
        """The transport's ``execute``; a prefetched reply is used once."""
        if arguments is None and command in self.replies:
            return _value(self.replies.pop(command))
        return await self.transport.execute(command, arguments)

    async def read_file(self, path: str) -> str:
        """:func:`~ceilometer_qga.qga.guest_file.read_file`, prefetched once."""
        if path in self.files:
            return _value(self.files.pop(path))
        return await guest_file.read_file(self.transport, path)


def _value(result: Any) -> Any:
    if isinstance(result, errors.QgaError):
        raise result
    return result


async def prefetch(transport: transport_mod.Transport,
                   caps: caps_mod.Capabilities,
                   plans: list[engine.Plan]) -> Prefetched:
    """Send the sweep's independent commands in one batch; see the module.

    :param plans: the plans of the collectors due in this sweep
    :raises errors.QgaError: one of :data:`~ceilometer_qga.qga.errors.
        UNREACHABLE` when the freeze status (the batch's first command)
        could not be had: the guest cannot be reached
    """
    out = Prefetched(transport)
    natives = list(dict.fromkeys(p.collector.command for p in plans
                                 if p.native))
    files = list(dict.fromkeys(p.prefetch_file for p in plans
                               if p.prefetch_file))
    head = ([freeze.STATUS_COMMAND] if caps.supports(freeze.STATUS_COMMAND)
            else [])
    if head and not transport.pipelined:
        # One command at a time anyway (libvirt): ask the freeze status
        # first and send nothing more to a frozen guest.
        [out.freeze_status] = await transport.execute_batch([(head[0], None)])
        if isinstance(out.freeze_status, errors.UNREACHABLE):
            raise out.freeze_status
        if out.freeze_status == 'frozen':
            return out
        head = []
    requests: list[transport_mod.Request] = [(c, None) for c in head + natives]
    requests += [guest_file.open_request(path) for path in files]
    if not requests:
        return out
    results = await transport.execute_batch(requests)
    if head:
        out.freeze_status = results.pop(0)
        if isinstance(out.freeze_status, errors.UNREACHABLE):
            raise out.freeze_status
    out.replies = dict(zip(natives, results))
    opened = dict(zip(files, results[len(natives):]))
    if opened:
        out.files = await guest_file.read_opened(transport, opened)
    return out
