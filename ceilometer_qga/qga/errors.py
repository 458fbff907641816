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

"""Typed errors of the guest-agent client.

Every error names the guest and the command it happened on, so that the one
place that handles it can log it once with full context.  The poller maps
each class onto the ``agent_state`` it reports with ``guest.agent.up``.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga import untrusted


class QgaError(Exception):
    """Base class: something went wrong talking to one guest's agent."""

    #: short machine-readable name used as ``agent_state`` in samples
    state = 'error'

    def __init__(self, guest: str, command: str | None, message: str,
                 details: Any = None) -> None:
        self.guest = guest
        self.command = command
        self.message = message
        self.details = details
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.command or '-'
        return f'guest {self.guest} command {where}: {self.message}'


class AgentNotConnected(QgaError):
    """Nobody is there: socket absent/refused, or libvirt says so."""

    state = 'not_connected'


class AgentTimeout(QgaError):
    """The agent did not answer within the deadline."""

    state = 'timeout'


class CommandNotSupported(QgaError):
    """The agent lacks the command, or has it disabled (``-b``/policy)."""

    state = 'unsupported'


class CommandForbidden(QgaError):
    """The client refused to send it: it is not on the read-only list."""

    state = 'forbidden'


class CommandFailed(QgaError):
    """The agent answered with an error object.

    ``error_class`` is qga's ``class`` (``GenericError``...).
    """

    state = 'command_failed'

    def __init__(self, guest: str, command: str | None, message: str,
                 error_class: str = 'GenericError', details: Any = None):
        self.error_class = error_class
        super().__init__(guest, command, message, details)


class AgentFrozen(CommandFailed):
    """The guest filesystems are frozen (a Nova quiesce is running)."""

    state = 'frozen'


class ProtocolError(QgaError):
    """The agent sent something that is not a valid reply.

    Garbage, a reply over the byte cap, a wrong id, invalid JSON.
    """

    state = 'protocol_error'


#: errors after which the agent is unreachable for the rest of the sweep
#: (no point in sending it anything more, not even a guest-file-close)
UNREACHABLE = (AgentNotConnected, AgentTimeout, ProtocolError)


def error_from_reply(guest: str, command: str, error: Any) -> QgaError:
    """Map a qga ``{"error": {...}}`` object onto a typed exception.

    qga says ``CommandNotFound`` both for unknown commands and for commands
    disabled with ``-b``; 7.2+ agents say "has been disabled" in ``desc``.
    A frozen guest answers ``CommandNotFound`` "Command X has been
    disabled: the agent is in frozen state" (seen through libvirt).
    """
    if not isinstance(error, dict):
        # Bounded: the guest chooses the value, and the message is logged.
        return ProtocolError(guest, command, 'error reply is not an object: '
                             '%s' % repr(error)[:200])
    klass = error.get('class')
    desc = error.get('desc')
    klass = klass if isinstance(klass, str) else 'GenericError'
    # The agent's text goes into logs and sample metadata: valid UTF-8 only.
    desc = untrusted.clean_text(desc[:500]) if isinstance(desc, str) else repr(desc)[:500]
    # Checked first: a frozen guest says "Command X has been disabled: the
    # agent is in frozen state" with class CommandNotFound, which must not
    # strike the command off the guest's capabilities.
    if 'frozen state' in desc:
        return AgentFrozen(guest, command, desc, error_class=klass)
    if klass == 'CommandNotFound' or 'has been disabled' in desc:
        return CommandNotSupported(guest, command, desc)
    return CommandFailed(guest, command, desc, error_class=klass)
