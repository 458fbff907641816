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

"""Tests of nova_qga.domain_xml over XML made by Nova's config classes."""

from __future__ import annotations

from lxml import etree
from nova.virt.libvirt import config as vconfig
import pytest

from nova_qga import domain_xml
from tests.fixtures import nova_domain

NOVA_NS = vconfig.NOVA_NS


@pytest.fixture
def instance():
    return nova_domain.make_instance()


def test_parse_rejects_other_documents():
    with pytest.raises(ValueError, match='<domain>'):
        domain_xml.parse_domain('<network><name>x</name></network>')


def test_parse_rejects_entities():
    # resolve_entities=False: an external entity stays an unresolved
    # reference and never pulls a host file into the domain.
    xml = ('<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<domain type="kvm"><name>&x;</name></domain>')
    domain = domain_xml.parse_domain(xml)
    assert 'root:' not in domain_xml.to_xml(domain)


def test_round_trip_keeps_nova_metadata(instance):
    xml = nova_domain.make_domain_xml(instance)
    domain = domain_xml.parse_domain(xml)
    again = etree.fromstring(domain_xml.to_xml(domain))
    meta = again.find('metadata/{%s}instance' % NOVA_NS)
    assert meta is not None
    assert meta.find('{%s}name' % NOVA_NS).text == 'web-1'
    assert meta.find('{%s}flavor' % NOVA_NS).get('name') == 'm1.small'
    assert again.findtext('uuid') == instance.uuid


def test_virt_type(instance):
    for virt_type in ('kvm', 'qemu', 'lxc'):
        domain = domain_xml.parse_domain(
            nova_domain.make_domain_xml(instance, virt_type=virt_type))
        assert domain_xml.virt_type(domain) == virt_type


def test_ensure_unix_channel_adds_nova_shaped_channel(instance):
    domain = domain_xml.parse_domain(nova_domain.make_domain_xml(instance))
    assert domain_xml.ensure_unix_channel(domain, 'org.example.0', '/s.sock')

    (channel,) = domain_xml.channels(domain, 'org.example.0')
    assert channel.getparent() is domain.find('devices')
    assert channel.get('type') == 'unix'
    assert channel.find('source').attrib == {'mode': 'bind',
                                             'path': '/s.sock'}
    assert channel.find('target').attrib == {'type': 'virtio',
                                             'name': 'org.example.0'}


def test_ensure_unix_channel_matches_nova_own_channel(instance):
    # The element we make is the one LibvirtConfigGuestChannel makes.
    nova_xml = nova_domain.make_domain_xml(instance, nova_agent_channel=True)
    (nova_channel,) = domain_xml.channels(
        domain_xml.parse_domain(nova_xml), 'org.qemu.guest_agent.0')

    domain = domain_xml.parse_domain(nova_domain.make_domain_xml(instance))
    domain_xml.ensure_unix_channel(domain, 'org.qemu.guest_agent.0',
                                   nova_channel.find('source').get('path'))
    (ours,) = domain_xml.channels(domain, 'org.qemu.guest_agent.0')
    assert etree.tostring(ours) == etree.tostring(nova_channel)


def test_ensure_unix_channel_is_idempotent(instance):
    domain = domain_xml.parse_domain(nova_domain.make_domain_xml(instance))
    assert domain_xml.ensure_unix_channel(domain, 'org.example.0', '/a')
    once = domain_xml.to_xml(domain)
    assert not domain_xml.ensure_unix_channel(domain, 'org.example.0', '/b')
    assert domain_xml.to_xml(domain) == once


def test_ensure_unix_channel_without_path(instance):
    domain = domain_xml.parse_domain(nova_domain.make_domain_xml(instance))
    domain_xml.ensure_unix_channel(domain, 'org.example.0')
    (channel,) = domain_xml.channels(domain, 'org.example.0')
    assert channel.find('source').attrib == {'mode': 'bind'}


def test_ensure_unix_channel_creates_devices():
    domain = domain_xml.parse_domain('<domain type="kvm"><name>x</name>'
                                     '</domain>')
    domain_xml.ensure_unix_channel(domain, 'org.example.0', '/a')
    assert len(domain.findall('devices')) == 1
    assert len(domain_xml.channels(domain, 'org.example.0')) == 1


def test_added_channel_is_indented_like_nova(instance):
    domain = domain_xml.parse_domain(nova_domain.make_domain_xml(instance))
    domain_xml.ensure_unix_channel(domain, 'org.example.0', '/a')
    assert ('    <channel type="unix">\n'
            '      <source mode="bind" path="/a"/>\n') in \
        domain_xml.to_xml(domain)
