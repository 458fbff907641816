"""Ask the agent about its OS: the commands behind the instance facts.

The replies are parsed by :mod:`ceilometer_qga.collectors.osfacts`; this
module only decides which commands to send and tolerates their failure
(facts are optional: the samples go out without them).
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport as transport_mod

FACT_COMMANDS = ('guest-get-osinfo', 'guest-get-host-name')


async def query(transport: transport_mod.Transport,
                capabilities: caps_mod.Capabilities) -> dict[str, Any]:
    """The replies of the fact commands the agent offers, by command.

    :raises errors.QgaError: only the errors after which the agent is
        unreachable; a failed or unsupported command is left out
    """
    replies: dict[str, Any] = {}
    for command in FACT_COMMANDS:
        if capabilities.supports(command):
            try:
                replies[command] = await transport.execute(command)
            except (errors.CommandFailed, errors.CommandNotSupported):
                pass  # facts are optional; the samples still go out
    return replies
