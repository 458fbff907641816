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

"""``agent_channel``: the standard guest-agent channel on every instance.

Stock ``qemu-guest-agent`` packages start by themselves on
``/dev/virtio-ports/org.qemu.guest_agent.0``; libvirt connects to the host
end and owns it (Nova's quiesce and set-password go through it, and so does
the poller's ``libvirt`` transport).
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from oslo_log import log as logging

from nova_qga import conf as qga_conf
from nova_qga import domain_xml
from nova_qga.hooks import base

LOG = logging.getLogger(__name__)

# The socket path is Nova's own (LibvirtDriver._add_qga_device) rather than
# left to libvirt, so an instance gets byte for byte the channel that
# hw_qemu_guest_agent=yes would have given it: /var/lib/libvirt/qemu is
# covered by the AppArmor (virt-aa-helper) and SELinux labelling of QEMU
# sockets, the path is in the persistent (inactive) XML, and it stays valid
# across hard reboot and live migration because instance.name is the same
# on the destination.  A libvirt-chosen path would exist only in the live XML.
_NOVA_SOCKET_PATH = '/var/lib/libvirt/qemu/%(target)s.%(name)s.sock'


class AgentChannelHook(base.DomainHook):
    """Add ``org.qemu.guest_agent.0`` unless the domain already has it."""

    def apply(self, domain: etree._Element, instance: Any,
              image_meta: Any) -> None:
        """Add the standard channel, leaving an existing one untouched."""
        path = _NOVA_SOCKET_PATH % {'target': qga_conf.STANDARD_CHANNEL_NAME,
                                    'name': instance.name}
        if domain_xml.ensure_unix_channel(
                domain, qga_conf.STANDARD_CHANNEL_NAME, path):
            LOG.debug('Added guest-agent channel %s', path,
                      instance=instance)
