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

"""Reading libvirt domain XML safely: parsing, and the virtio channels.

Domain XML comes from libvirt, but parts of it (server names, image
properties) are chosen by tenants, so it is parsed with entities off, no
network and libxml2's size limits on.  Discovery and the libvirt transport
both read the guest-agent channels from it, with :func:`parse_channels`.
"""

from __future__ import annotations

from lxml import etree

from ceilometer_qga.guest import Channel

#: the values libvirt puts in ``<channel><target state=...>``
CHANNEL_STATES = ('connected', 'disconnected')


def parse_xml(text: str | bytes) -> etree._Element | None:
    """Parse XML text safely; return the root element or None.

    Entities are not resolved, the network is never used and libxml2's
    size limits stay on (``huge_tree=False``): the XML comes from libvirt,
    but parts of it (server names, image properties) are chosen by tenants.
    """
    # A parser per call: lxml parsers must not be used by two threads at
    # once, and discovery and the libvirt transport run in worker threads.
    parser = etree.XMLParser(resolve_entities=False, no_network=True,
                             huge_tree=False)
    try:
        root = etree.fromstring(text, parser=parser)
    except (etree.XMLSyntaxError, ValueError, TypeError):
        # ValueError: a str carrying an encoding declaration; TypeError:
        # not text at all.
        return None
    return root


def parse_channels(domain: etree._Element) -> tuple[Channel, ...]:
    """Return the unix virtio-serial channels of a parsed ``<domain>``.

    A channel without ``<source path>`` gets ``path=None`` (the inactive
    XML of a domain whose socket libvirt places itself); a ``state`` other
    than connected/disconnected (absent in the test driver and old
    libvirt) gets ``state=None``.  Channels without a target name are not
    addressable and are left out.
    """
    channels = []
    for chan in domain.findall('./devices/channel'):
        if chan.get('type') != 'unix':
            continue
        target = chan.find('./target')
        if target is None or target.get('type') != 'virtio':
            continue
        name = target.get('name')
        if not name:
            continue
        source = chan.find('./source')
        path = source.get('path') if source is not None else None
        state = target.get('state')
        channels.append(Channel(
            target_name=name,
            path=path or None,
            state=state if state in CHANNEL_STATES else None))
    return tuple(channels)
