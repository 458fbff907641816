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

"""The few edits nova_qga makes to a libvirt ``<domain>``, in one place.

Hooks speak in elements through these helpers and never in strings.  The
channel element is built by Nova's own ``LibvirtConfigGuestChannel``
(``format_dom``), the class Nova's driver uses for
``hw_qemu_guest_agent=yes`` (``LibvirtDriver._add_qga_device``), so it is
the element Nova would write::

    <channel type="unix">
      <source mode="bind" path="..."/>
      <target type="virtio" name="org.qemu.guest_agent.0"/>
    </channel>
"""

from __future__ import annotations

from lxml import etree
from nova.virt.libvirt import config as vconfig

# Blank text is dropped on parsing so that serialising with pretty_print
# indents the elements we add like the ones Nova wrote.
_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False,
                          no_network=True)


def parse_domain(xml: str) -> etree._Element:
    """Parse a domain definition; raise ValueError unless it is one."""
    domain = etree.fromstring(xml.encode('utf-8'), parser=_PARSER)
    if domain.tag != 'domain':
        raise ValueError('expected a <domain> element, got <%s>' % domain.tag)
    return domain


def to_xml(domain: etree._Element) -> str:
    """Serialise ``domain`` the way Nova does (pretty-printed text)."""
    return etree.tostring(domain, encoding='unicode', pretty_print=True)


def virt_type(domain: etree._Element) -> str | None:
    """The hypervisor type libvirt is asked for (``<domain type=...>``)."""
    return domain.get('type')


def devices(domain: etree._Element) -> etree._Element:
    """The ``<devices>`` element, created when the domain has none."""
    found = domain.find('devices')
    if found is None:
        found = etree.SubElement(domain, 'devices')
    return found


def channels(domain: etree._Element, target_name: str) -> list[etree._Element]:
    """Every ``<channel>`` whose virtio target is named ``target_name``."""
    return [target.getparent()
            for target in domain.iterfind('devices/channel/target')
            if target.get('name') == target_name]


def ensure_unix_channel(domain: etree._Element, target_name: str,
                        path: str | None = None) -> bool:
    """Add a unix ``bind`` channel named ``target_name`` unless one exists.

    Any existing channel with that target name is left exactly as it is,
    whatever its type or path: it may be Nova's own (``hw_qemu_guest_agent``)
    or an operator's, and a second one would make libvirt refuse the domain.
    ``path=None`` leaves the socket location to libvirt.

    :returns: True when a channel was added, False when one was there.
    """
    if channels(domain, target_name):
        return False
    config = vconfig.LibvirtConfigGuestChannel()
    config.type = 'unix'
    config.target_name = target_name
    # Nova always names the path; without one libvirt chooses it.
    config.source_path = '' if path is None else path
    channel = config.format_dom()
    if path is None:
        del channel.find('source').attrib['path']
    devices(domain).append(channel)
    return True
