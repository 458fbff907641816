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

"""Read Nova's ``<nova:instance>`` element out of a libvirt domain XML.

Nova's libvirt driver writes who owns an instance, its flavor and its image
into ``<domain><metadata><nova:instance>``
(``nova.virt.libvirt.config.LibvirtConfigGuestMetaNovaInstance``).
Ceilometer's ``libvirt_metadata`` discovery reads the same element
(``ceilometer/compute/discovery.py``); the functions here turn it into the
same instance metadata Ceilometer's compute pollsters put into
``resource_metadata``, key for key where the XML has the value.

Everything here is a pure function of the XML text.  Parsing never raises on
bad content: a missing or garbled part is left out (or ``None``), the rest is
still returned.  Only a domain with no ``<nova:instance>`` at all gives
``None``: it is not a Nova instance.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from lxml import etree

#: Nova's metadata namespaces, newest first (as Ceilometer tries them)
NOVA_NAMESPACES = (
    'http://openstack.org/xmlns/libvirt/nova/1.1',
    'http://openstack.org/xmlns/libvirt/nova/1.0',
)

# Format of <nova:creationTime> (UTC), see LibvirtConfigGuestMetaNovaInstance.
_CREATION_TIME_FORMAT = '%Y-%m-%d %H:%M:%S'

# Flavor child element -> key of Ceilometer's flavor dict.
_FLAVOR_INTS = (
    ('vcpus', 'vcpus'),
    ('memory', 'ram'),
    ('disk', 'disk'),
    ('ephemeral', 'ephemeral'),
    ('swap', 'swap'),
)

# <nova:image> child element -> image_meta key (Nova's SM_INHERITABLE_KEYS).
_IMAGE_FIELDS = (
    ('containerFormat', 'container_format'),
    ('diskFormat', 'disk_format'),
    ('minDisk', 'min_disk'),
    ('minRam', 'min_ram'),
)


@dataclasses.dataclass
class NovaInstance:
    """What the Nova metadata of one domain says.

    :ivar display_name: the server name the user chose (``<nova:name>``)
    :ivar user_id: ``<nova:owner><nova:user uuid=...>``
    :ivar user_name: that element's text
    :ivar project_id: ``<nova:owner><nova:project uuid=...>``
    :ivar project_name: that element's text
    :ivar metadata: Ceilometer-style instance metadata (``display_name``,
        ``instance_type``, ``flavor``, ``image``, ``image_ref``,
        ``image_meta``, ``vcpus``, ``memory_mb``...), only the keys the XML
        gives
    """

    display_name: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def find_instance_element(domain: etree._Element) -> etree._Element | None:
    """Return the ``<nova:instance>`` element of a domain, or None."""
    for ns in NOVA_NAMESPACES:
        elem = domain.find('./metadata/{%s}instance' % ns)
        if elem is not None:
            return elem
    return None


def domain_instance(domain: etree._Element) -> NovaInstance | None:
    """Read the Nova metadata of a parsed ``<domain>``.

    Adds ``os_type`` and ``architecture`` from ``<os><type arch=...>`` as
    Ceilometer does.  Returns None when the domain has no Nova metadata.
    """
    elem = find_instance_element(domain)
    if elem is None:
        return None
    instance = parse_instance(elem)
    os_type = domain.find('./os/type')
    if os_type is not None:
        if _text(os_type) is not None:
            instance.metadata['os_type'] = _text(os_type)
        if os_type.get('arch'):
            instance.metadata['architecture'] = os_type.get('arch')
    return instance


def parse_instance(elem: etree._Element) -> NovaInstance:
    """Read one ``<nova:instance>`` element.

    Children are looked up in the element's own namespace, so this also
    reads the namespace-less copy that ``virDomainGetMetadata`` returns.
    """
    kids = _Children(etree.QName(elem).namespace)
    instance = NovaInstance()
    meta = instance.metadata

    instance.display_name = _text(kids.one(elem, 'name'))
    meta['display_name'] = instance.display_name

    owner = kids.one(elem, 'owner')
    if owner is not None:
        user = kids.one(owner, 'user')
        project = kids.one(owner, 'project')
        if user is not None:
            instance.user_id = user.get('uuid') or None
            instance.user_name = _text(user)
        if project is not None:
            instance.project_id = project.get('uuid') or None
            instance.project_name = _text(project)

    flavor = _flavor(kids, kids.one(elem, 'flavor'))
    meta['flavor'] = flavor
    meta['instance_type'] = flavor['name'] if flavor else None
    if flavor:
        # The instance-level copies Ceilometer derives from the flavor,
        # root_gb computed as Ceilometer does (disk - ephemeral).
        meta['vcpus'] = flavor['vcpus']
        meta['memory_mb'] = flavor['ram']
        meta['disk_gb'] = flavor['disk']
        meta['ephemeral_gb'] = flavor['ephemeral']
        meta['root_gb'] = (flavor['disk'] - flavor['ephemeral']
                           if flavor['disk'] is not None
                           and flavor['ephemeral'] is not None else None)

    # Only an image-backed root names an image; a volume-backed instance
    # has <nova:root type="volume">.
    image_id = None
    for root in kids.all(elem, 'root'):
        if root.get('type') == 'image' and root.get('uuid'):
            image_id = root.get('uuid')
            break
    meta['image'] = {'id': image_id} if image_id else None
    meta['image_ref'] = image_id
    meta['image_ref_url'] = None

    image_meta = _image_meta(kids, kids.one(elem, 'image'))
    if image_meta is not None:
        meta['image_meta'] = image_meta

    created = _creation_time(_text(kids.one(elem, 'creationTime')))
    if created is not None:
        meta['created_at'] = created
    return instance


class _Children:
    """Find children in one namespace (the ``<nova:instance>``'s own)."""

    def __init__(self, ns: str | None) -> None:
        self._prefix = '{%s}' % ns if ns else ''

    def one(self, parent: etree._Element | None,
            name: str) -> etree._Element | None:
        if parent is None:
            return None
        return parent.find(self._prefix + name)

    def all(self, parent: etree._Element, name: str) -> list[etree._Element]:
        return parent.findall(self._prefix + name)


def _text(elem: etree._Element | None) -> str | None:
    return None if elem is None else elem.text


def _int(elem: etree._Element | None) -> int | None:
    """Ceilometer's ``_safe_find_int``: absent -> 0; garbled -> None."""
    if elem is None:
        return 0
    try:
        return int(_text(elem))
    except (TypeError, ValueError):
        return None


def _flavor(kids: _Children,
            elem: etree._Element | None) -> dict[str, Any] | None:
    if elem is None:
        return None
    name = elem.get('name')
    # Nova writes the flavor id since 2025.2; before that Ceilometer asks
    # the Nova API and, failing that, uses the name.  We have no API.
    flavor: dict[str, Any] = {'id': elem.get('id') or name, 'name': name}
    for child, key in _FLAVOR_INTS:
        flavor[key] = _int(kids.one(elem, child))
    specs = kids.one(elem, 'extraSpecs')
    if specs is not None:
        # Present-but-empty means "no extra specs"; absent means "Nova too
        # old to write them" and the key is left out, as in Ceilometer.
        flavor['extra_specs'] = {
            spec.get('name'): spec.text
            for spec in kids.all(specs, 'extraSpec')
            if spec.get('name')}
    return flavor


def _image_meta(kids: _Children,
                elem: etree._Element | None) -> dict[str, Any] | None:
    if elem is None:
        return None
    image_meta: dict[str, Any] = {}
    if elem.get('uuid') is not None:
        image_meta['base_image_ref'] = elem.get('uuid')
    for child, key in _IMAGE_FIELDS:
        node = kids.one(elem, child)
        if node is not None:
            image_meta[key] = node.text
    props = kids.one(elem, 'properties')
    if props is not None:
        for prop in kids.all(props, 'property'):
            if prop.get('name'):
                image_meta[prop.get('name')] = prop.text
    return image_meta


def _creation_time(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        when = datetime.datetime.strptime(text, _CREATION_TIME_FORMAT)
    except ValueError:
        return None
    return when.replace(tzinfo=datetime.timezone.utc).isoformat()
