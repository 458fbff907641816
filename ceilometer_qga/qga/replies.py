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

"""The one decoder of qga replies, for every transport.

A reply line (socket) or string (libvirt's ``qemuAgentCommand``) is a JSON
object with either ``return`` (the result) or ``error`` (``class`` and
``desc``).  Both transports turn it into a result or a typed error here, so
that "what a reply means" is written once.
"""

from __future__ import annotations

import json
from typing import Any

from ceilometer_qga.qga import errors


def decode(guest: str, command: str, text: bytes | str | None) -> dict[str, Any]:
    """The reply object of one line.

    :raises errors.ProtocolError: not JSON, or not a JSON object
    """
    try:
        reply = json.loads(text or b'')
    except (ValueError, RecursionError) as exc:
        raise errors.ProtocolError(guest, command,
                                   'invalid JSON: %s' % str(exc)[:200]) from None
    if not isinstance(reply, dict):
        raise errors.ProtocolError(guest, command, 'reply is not a JSON object')
    return reply


def outcome(guest: str, command: str, reply: dict[str, Any]) -> Any:
    """The ``return`` value, or the typed error of an ``error`` reply.

    An agent's error is returned, not raised, so that a batch can keep it as
    that command's result and go on.

    :raises errors.ProtocolError: the reply has neither member
    """
    if 'error' in reply:
        return errors.error_from_reply(guest, command, reply['error'])
    if 'return' not in reply:
        raise errors.ProtocolError(guest, command,
                                   'reply has neither return nor error')
    return reply['return']


def value(guest: str, command: str, reply: dict[str, Any]) -> Any:
    """The ``return`` value of ``reply``.

    :raises errors.QgaError: the agent's error, typed; or ProtocolError
    """
    result = outcome(guest, command, reply)
    if isinstance(result, errors.QgaError):
        raise result
    return result
