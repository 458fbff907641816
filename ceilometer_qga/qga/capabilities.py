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

"""What a guest agent offers, from its ``guest-info`` reply.

qga lists every command it knows in ``supported_commands`` with an
``enabled`` flag; commands blocked with ``-b``/``--block-rpcs`` or by the
agent's own policy (``guest-get-devices`` on Linux) are there with
``enabled: false``.  This list, not the version number, decides what the
poller sends: a command the guest does not offer is not sent at all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ceilometer_qga import untrusted

_MAX_COMMANDS = 1024
_MAX_NAME = 128


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """The enabled and disabled commands of one agent, and its version."""

    version: str | None
    enabled: frozenset[str]
    disabled: frozenset[str]

    def supports(self, command: str) -> bool:
        """True if the agent offers ``command`` and it is enabled."""
        return command in self.enabled

    def supports_all(self, commands: tuple[str, ...]) -> bool:
        """True if every command of ``commands`` is enabled."""
        return all(c in self.enabled for c in commands)


def parse_guest_info(reply: Any) -> Capabilities:
    """Build :class:`Capabilities` from a ``guest-info`` return value.

    The guest is untrusted: entries that are not well formed are ignored,
    the list is truncated at 1024 entries, and a reply that is not an object
    yields empty capabilities (nothing will be sent but liveness probes).
    """
    if not isinstance(reply, dict):
        return Capabilities(None, frozenset(), frozenset())
    version = reply.get('version')
    version = untrusted.clean_text(version[:64]) if isinstance(version, str) else None
    enabled: set[str] = set()
    disabled: set[str] = set()
    commands = reply.get('supported_commands')
    if isinstance(commands, list):
        for entry in commands[:_MAX_COMMANDS]:
            if not isinstance(entry, dict):
                continue
            name = entry.get('name')
            if not isinstance(name, str) or len(name) > _MAX_NAME:
                continue
            if entry.get('enabled') is True:
                enabled.add(name)
            else:
                disabled.add(name)
    return Capabilities(version, frozenset(enabled), frozenset(disabled))
