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

#: what operators see for a guest without any guest-agent channel: an
#: instance started before the Nova extension (or opted out), which keeps
#: its old monitoring and is not an agent that is down
LEGACY_STATE = 'legacy'


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
    :ivar metadata: further Ceilometer-style instance metadata (flavor,
        image_ref, host...) copied into every sample's resource_metadata
    """

    instance_id: str
    name: str
    display_name: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    channels: tuple[Channel, ...] = ()
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict,
                                                 hash=False, compare=False)

    def channel(self, target_name: str) -> Channel | None:
        """Return the channel with this target name, or None."""
        for chan in self.channels:
            if chan.target_name == target_name:
                return chan
        return None

    def has_agent_channel(self, monitor_channel_name: str) -> bool:
        """Whether the domain has a guest-agent channel at all.

        The standard channel or the dedicated monitor channel
        (``[qga_polling] monitor_channel_name``), whatever its state.  A
        guest without either is a legacy guest (:data:`LEGACY_STATE`): no
        transport can ever reach an agent in it.
        """
        return any(chan.target_name in (STANDARD_CHANNEL,
                                        monitor_channel_name)
                   for chan in self.channels)
