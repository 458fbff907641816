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

"""What discovery knows about one guest: identity, ownership, channels.

Discovery plugins build :class:`Guest` objects; the poller, transports and
sample builder only read them.  Field names follow Ceilometer's instance
metadata (``display_name``, ``instance_type``...) where they overlap.
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: the channel stock qemu-guest-agent packages open by themselves
STANDARD_CHANNEL = 'org.qemu.guest_agent.0'

#: ``agent_state`` of a guest created the old way (no agent channel at all)
LEGACY = 'legacy'
#: why a legacy guest is not polled (report error, probe output)
LEGACY_REASON = ('the domain has no guest-agent channel (started before '
                 'the Nova extension, or opted out)')


@dataclasses.dataclass(frozen=True)
class Channel:
    """One virtio-serial channel of the domain.

    :ivar target_name: ``<target name=...>``, e.g. ``org.qemu.guest_agent.0``
    :ivar path: host-side unix socket, or None when libvirt chose it and the
        live XML was not available
    :ivar state: ``connected``/``disconnected`` as libvirt reports in the
        live XML (whether the guest opened the port), or None when unknown
    """

    target_name: str
    path: str | None = None
    state: str | None = None


@dataclasses.dataclass(frozen=True)
class Guest:
    """A running instance to poll.

    :ivar instance_id: Nova instance uuid (the libvirt domain uuid)
    :ivar name: libvirt domain name (``instance-0000000a``) or a label
    :ivar display_name: the server name the user chose
    :ivar libvirt_uri: the libvirt connection URI of the hypervisor that
        runs the domain, as the discovery that found it connects there;
        None when the guest was not found through libvirt.  The libvirt
        transport talks to the agent through this hypervisor, so it needs
        no option of its own that would have to match discovery's.
    :ivar metadata: further Ceilometer-style instance metadata (flavor,
        image_ref, host...) copied into every sample's resource_metadata
    """

    instance_id: str
    name: str
    display_name: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    channels: tuple[Channel, ...] = ()
    libvirt_uri: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict,
                                                 hash=False, compare=False)

    def is_legacy(self, monitor_channel_name: str) -> bool:
        """True for a guest created the old way: no guest-agent channel.

        Neither the standard channel nor the dedicated monitor channel
        (``[qga_polling] monitor_channel_name``): such guests keep the
        monitoring injected into them, so the poller leaves
        them alone and raises no ``guest.agent.up=0`` for them.  A guest
        with a channel whose agent does not answer is not legacy.
        """
        return (self.channel(STANDARD_CHANNEL) is None
                and self.channel(monitor_channel_name) is None)

    def channel(self, target_name: str) -> Channel | None:
        """Return the channel with this target name, or None."""
        for chan in self.channels:
            if chan.target_name == target_name:
                return chan
        return None
