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

"""The guest's OS facts, in one place: what to ask, how to read it.

``guest-get-osinfo`` and ``guest-get-host-name`` become flat string dicts
merged into the metadata of every instance-level sample; the OS id also
decides whether the guest has a ``/proc`` at all (:func:`has_proc`).  Facts
are optional: a command the agent lacks or refuses is left out, and the
parsers never raise (a fact that cannot be read is absent).

``os_version`` is the machine-friendly ``version-id`` (``"12"``,
``"2019"``), not the display ``version`` (``"12 (bookworm)"``), which
``os_pretty_name`` already covers in spirit.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.qga import capabilities as caps_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport as transport_mod
from ceilometer_qga import untrusted

#: metadata key for each guest-get-osinfo member
OSINFO_KEYS = (
    ('id', 'os_id'),
    ('name', 'os_name'),
    ('version-id', 'os_version'),
    ('pretty-name', 'os_pretty_name'),
    ('kernel-release', 'kernel_release'),
    ('kernel-version', 'kernel_version'),
    ('machine', 'machine'),
)

#: ``guest-get-osinfo`` ids of guests without a ``/proc``: a Windows agent
#: (virtio-win qemu-ga) has none, and asking it to open ``/proc/meminfo``
#: would only cost a failing ``guest-file-open`` per collector per sweep
NO_PROC_OS_IDS = frozenset({'mswindows'})


def parse_osinfo(reply: Any) -> dict[str, str]:
    """OS facts from a ``guest-get-osinfo`` reply; ``{}`` if unusable.

    Only non-empty strings are kept, each cut to 255 characters.
    """
    if not isinstance(reply, dict):
        return {}
    facts = {}
    for member, key in OSINFO_KEYS:
        value = untrusted.text(reply.get(member))
        if value:
            facts[key] = value
    return facts


def parse_hostname(reply: Any) -> dict[str, str]:
    """``{'guest_hostname': ...}`` from ``guest-get-host-name``, or ``{}``."""
    if not isinstance(reply, dict):
        return {}
    value = untrusted.text(reply.get('host-name'))
    return {'guest_hostname': value} if value else {}


#: the fact commands, in the order they are sent, and their parsers
PARSERS = {'guest-get-osinfo': parse_osinfo,
           'guest-get-host-name': parse_hostname}
FACT_COMMANDS = tuple(PARSERS)


def has_proc(facts: dict[str, Any]) -> bool:
    """True unless the OS facts say the guest has no ``/proc`` (Windows).

    A guest whose OS is unknown (an agent without ``guest-get-osinfo``,
    older than 2.10) is taken for Linux.
    """
    return facts.get('os_id') not in NO_PROC_OS_IDS


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


async def read(transport: transport_mod.Transport,
               capabilities: caps_mod.Capabilities) -> dict[str, Any]:
    """The guest's facts: the agent's version and the parsed OS facts."""
    facts: dict[str, Any] = {}
    if capabilities.version:
        facts['agent_version'] = capabilities.version
    for command, reply in (await query(transport, capabilities)).items():
        facts.update(PARSERS[command](reply))
    return facts
