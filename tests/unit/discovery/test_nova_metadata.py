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

"""nova_metadata: Nova's <nova:instance>, as Nova writes it, and garbled.

The XML comes from Nova's own config classes (see ``nova_domain``); the
garbled variants are edits of that XML.
"""

from __future__ import annotations

import datetime
import json

import hypothesis
from hypothesis import strategies as st
from lxml import etree
import pytest

from ceilometer_qga.discovery import nova_metadata
from ceilometer_qga import libvirt_xml
from tests.fixtures import nova_domain

UUID = '2f6cbc0a-6d44-4c2a-9a4c-3d5d1e0a4b11'
NS = '{http://openstack.org/xmlns/libvirt/nova/1.1}'


def nova_root(**server) -> etree._Element:
    xml = nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=UUID, domain_name='instance-0000000a', **server))
    return libvirt_xml.parse_xml(xml)


def nova_el(root: etree._Element, path: str) -> etree._Element:
    """Find ``a/b`` under <nova:instance>, every step in Nova's namespace."""
    steps = ''.join('/' + NS + step for step in path.split('/'))
    return root.find('./metadata/%sinstance%s' % (NS, steps))


def test_full_instance_as_nova_writes_it():
    inst = nova_metadata.domain_instance(nova_root())

    assert (inst.display_name, inst.user_id, inst.user_name,
            inst.project_id, inst.project_name) == (
        'web-1', nova_domain.USER_ID, 'alice',
        nova_domain.PROJECT_ID, 'demo')
    meta = dict(inst.metadata)
    created = datetime.datetime.fromisoformat(meta.pop('created_at'))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(0) <= now - created < datetime.timedelta(
        minutes=1)
    assert meta == {
        'display_name': 'web-1',
        'instance_type': 'm1.small',
        'flavor': {'id': '2', 'name': 'm1.small', 'vcpus': 2, 'ram': 2048,
                   'disk': 20, 'ephemeral': 5, 'swap': 512,
                   'extra_specs': {'hw:cpu_policy': 'shared',
                                   'qga:monitor': 'true'}},
        'vcpus': 2, 'memory_mb': 2048, 'disk_gb': 20, 'ephemeral_gb': 5,
        'root_gb': 15,
        'image': {'id': nova_domain.IMAGE_ID},
        'image_ref': nova_domain.IMAGE_ID,
        'image_ref_url': None,
        'image_meta': {'base_image_ref': nova_domain.IMAGE_ID,
                       'container_format': 'bare', 'disk_format': 'qcow2',
                       'min_disk': '20', 'min_ram': '0',
                       'hw_qemu_guest_agent': 'True',
                       'os_distro': 'debian'},
        'os_type': 'hvm',
        'architecture': 'x86_64',
    }


def test_volume_backed_instance_has_no_image():
    inst = nova_metadata.domain_instance(nova_root(image_ref=None))
    assert inst.metadata['image'] is None
    assert inst.metadata['image_ref'] is None
    # Nova still writes <nova:image uuid="">, with the volume's image meta.
    assert inst.metadata['image_meta']['base_image_ref'] == ''
    assert inst.metadata['image_meta']['disk_format'] == 'qcow2'


def test_empty_extra_specs_are_an_empty_dict():
    inst = nova_metadata.domain_instance(nova_root(extra_specs={}))
    assert inst.metadata['flavor']['extra_specs'] == {}


def test_old_nova_namespace_1_0():
    xml = nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=UUID, domain_name='i-1')).replace(
        'http://openstack.org/xmlns/libvirt/nova/1.1',
        'http://openstack.org/xmlns/libvirt/nova/1.0')
    inst = nova_metadata.domain_instance(libvirt_xml.parse_xml(xml))
    assert inst.display_name == 'web-1'
    assert inst.metadata['flavor']['ram'] == 2048


def test_unknown_namespace_is_not_nova():
    xml = nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=UUID, domain_name='i-1')).replace(
        'http://openstack.org/xmlns/libvirt/nova/1.1',
        'http://example.org/not-nova')
    assert nova_metadata.domain_instance(libvirt_xml.parse_xml(xml)) is None


def test_domain_without_metadata_is_not_nova():
    root = libvirt_xml.parse_xml(
        "<domain type='test'><name>test</name><os><type>hvm</type></os>"
        "</domain>")
    assert nova_metadata.domain_instance(root) is None


def test_namespace_less_copy_from_virDomainGetMetadata():
    # virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT) hands back the
    # element without its namespace; the same reader must cope.
    root = nova_root()
    elem = nova_metadata.find_instance_element(root)
    for node in elem.iter():
        node.tag = etree.QName(node).localname
    etree.cleanup_namespaces(elem)
    bare = etree.fromstring(etree.tostring(elem))
    assert bare.tag == 'instance'
    inst = nova_metadata.parse_instance(bare)
    assert (inst.display_name, inst.project_name) == ('web-1', 'demo')
    assert inst.metadata['flavor']['extra_specs']['qga:monitor'] == 'true'


def test_garbled_numbers_become_none_and_absent_ones_zero():
    root = nova_root()
    nova_el(root, 'flavor/memory').text = 'lots'
    nova_el(root, 'flavor/ephemeral').text = None
    flavor_el = nova_el(root, 'flavor')
    flavor_el.remove(nova_el(root, 'flavor/swap'))
    del flavor_el.attrib['id']
    meta = nova_metadata.domain_instance(root).metadata
    assert meta['flavor']['ram'] is None
    assert meta['memory_mb'] is None
    assert meta['flavor']['ephemeral'] is None
    assert meta['root_gb'] is None
    assert meta['flavor']['swap'] == 0
    assert meta['flavor']['id'] == 'm1.small'      # Ceilometer's fallback
    assert meta['disk_gb'] == 20


def test_missing_parts_leave_the_rest():
    root = nova_root()
    inst_el = nova_metadata.find_instance_element(root)
    for part in ('owner', 'flavor', 'image', 'creationTime'):
        inst_el.remove(nova_el(root, part))
    inst = nova_metadata.domain_instance(root)
    assert inst.display_name == 'web-1'
    assert (inst.user_id, inst.project_id) == (None, None)
    meta = inst.metadata
    assert meta['flavor'] is None and meta['instance_type'] is None
    assert 'vcpus' not in meta and 'image_meta' not in meta
    assert 'created_at' not in meta
    assert meta['image_ref'] == nova_domain.IMAGE_ID


def test_nameless_entries_and_bad_dates_are_dropped():
    root = nova_root()
    del nova_el(root, 'flavor/extraSpecs/extraSpec').attrib['name']
    del nova_el(root, 'image/properties/property').attrib['name']
    nova_el(root, 'creationTime').text = 'yesterday'
    nova_el(root, 'owner/user').attrib['uuid'] = ''
    inst = nova_metadata.domain_instance(root)
    assert inst.metadata['flavor']['extra_specs'] == {'qga:monitor': 'true'}
    assert 'hw_qemu_guest_agent' not in inst.metadata['image_meta']
    assert inst.metadata['image_meta']['os_distro'] == 'debian'
    assert 'created_at' not in inst.metadata
    assert inst.user_id is None and inst.user_name == 'alice'


@pytest.mark.parametrize('text', [
    '', 'not xml', '<domain>', b'\xff\xfe\x00', '<?xml version="1.0" '
    'encoding="UTF-8"?><domain/>',
])
def test_unparsable_xml_is_none(text):
    assert libvirt_xml.parse_xml(text) is None


def test_entities_are_not_resolved():
    xml = (b'<?xml version="1.0"?><!DOCTYPE domain ['
           b'<!ENTITY ext SYSTEM "file:///etc/hostname">'
           b'<!ENTITY inner "expanded">]>'
           b'<domain><metadata><nova:instance xmlns:nova="'
           b'http://openstack.org/xmlns/libvirt/nova/1.1">'
           b'<nova:name>&ext;&inner;</nova:name></nova:instance>'
           b'</metadata></domain>')
    root = libvirt_xml.parse_xml(xml)
    name = nova_el(root, 'name')
    assert name.text is None
    assert [child.tag for child in name] == [etree.Entity, etree.Entity]
    assert nova_metadata.domain_instance(root).display_name is None


_NOVA_XML = nova_domain.nova_domain_xml(nova_domain.Server(
    uuid=UUID, domain_name='instance-0000000a'))
_N_ELEMENTS = len(list(etree.fromstring(_NOVA_XML).iter()))


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(
    drops=st.sets(st.integers(0, _N_ELEMENTS - 1), max_size=6),
    texts=st.dictionaries(st.integers(0, _N_ELEMENTS - 1),
                          st.one_of(st.none(), st.text(max_size=12)),
                          max_size=6),
    attrs=st.dictionaries(st.integers(0, _N_ELEMENTS - 1),
                          st.sampled_from(['name', 'id', 'uuid', 'type']),
                          max_size=4))
def test_any_mutilation_of_nova_xml_never_raises(drops, texts, attrs):
    root = libvirt_xml.parse_xml(_NOVA_XML)
    elements = list(root.iter())
    for index, text in texts.items():
        text = ''.join(ch for ch in text or '' if ch.isprintable()) or None
        elements[index].text = text
    for index, attr in attrs.items():
        elements[index].attrib.pop(attr, None)
    for index in sorted(drops, reverse=True):
        elem = elements[index]
        if elem.getparent() is not None:
            elem.getparent().remove(elem)
    inst = nova_metadata.domain_instance(root)
    if inst is None:
        # only when <metadata> or <nova:instance> itself was dropped
        assert nova_metadata.find_instance_element(root) is None
        return
    # resource_metadata goes on the wire as JSON
    json.dumps(inst.metadata)
    flavor = inst.metadata['flavor']
    if flavor is not None:
        for key in ('vcpus', 'ram', 'disk', 'ephemeral', 'swap'):
            assert flavor[key] is None or isinstance(flavor[key], int)
    for value in (inst.display_name, inst.user_id, inst.project_id,
                  inst.metadata['image_ref']):
        assert value is None or isinstance(value, str)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_parse_xml_never_raises(data):
    root = libvirt_xml.parse_xml(data)
    assert root is None or etree.iselement(root)
