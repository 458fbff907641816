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

#: What qemu-ga still runs while the guest's filesystems are frozen
#: (``ga_freeze_allowlist`` in QEMU 7.2's ``qga/main.c``): ``ga_set_frozen``
#: disables every other command, so ``guest-info`` read during a freeze
#: says they are off until ``guest-fsfreeze-thaw``.
FREEZE_SAFE = frozenset({'guest-ping', 'guest-info', 'guest-sync',
                         'guest-sync-delimited', 'guest-fsfreeze-status',
                         'guest-fsfreeze-thaw'})


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

    def looks_frozen(self) -> bool:
        """True if this is what a frozen agent lists: only the freeze-safe
        commands enabled, others disabled (see :data:`FREEZE_SAFE`)."""
        return bool(self.enabled) and self.enabled <= FREEZE_SAFE and bool(
            self.disabled - FREEZE_SAFE)


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
