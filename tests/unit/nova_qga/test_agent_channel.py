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

"""Tests of the agent_channel hook over Nova-generated domain XML."""

from __future__ import annotations

from lxml import etree

from nova_qga import domain_xml
from nova_qga.hooks import agent_channel
from tests.fixtures import nova_domain

NAME = 'org.qemu.guest_agent.0'


def _apply(conf, xml, instance, image_meta=None):
    domain = domain_xml.parse_domain(xml)
    agent_channel.AgentChannelHook(conf).apply(
        domain, instance, image_meta or nova_domain.make_image_meta())
    return domain


def test_adds_standard_channel_once(conf):
    instance = nova_domain.make_instance()
    domain = _apply(conf, nova_domain.make_domain_xml(instance), instance)

    (channel,) = domain_xml.channels(domain, NAME)
    assert channel.get('type') == 'unix'
    # Nova's own convention (LibvirtDriver._add_qga_device).
    assert channel.find('source').attrib == {
        'mode': 'bind',
        'path': '/var/lib/libvirt/qemu/org.qemu.guest_agent.0.'
                'instance-0000000a.sock'}
    assert channel.find('target').attrib == {'type': 'virtio', 'name': NAME}
    assert len(domain.findall('devices/channel')) == 1


def test_same_channel_as_hw_qemu_guest_agent(conf):
    """Our channel is exactly the one Nova adds for the image property."""
    instance = nova_domain.make_instance()
    ours = _apply(conf, nova_domain.make_domain_xml(instance), instance)
    novas = domain_xml.parse_domain(
        nova_domain.make_domain_xml(instance, nova_agent_channel=True))
    assert (etree.tostring(domain_xml.channels(ours, NAME)[0]) ==
            etree.tostring(domain_xml.channels(novas, NAME)[0]))


def test_idempotent(conf):
    instance = nova_domain.make_instance()
    once = _apply(conf, nova_domain.make_domain_xml(instance), instance)
    twice = _apply(conf, domain_xml.to_xml(once), instance)
    assert domain_xml.to_xml(twice) == domain_xml.to_xml(once)


def test_respects_channel_from_hw_qemu_guest_agent(conf):
    instance = nova_domain.make_instance(
        image_properties={'hw_qemu_guest_agent': 'yes'})
    xml = nova_domain.make_domain_xml(instance, nova_agent_channel=True)
    image_meta = nova_domain.make_image_meta({'hw_qemu_guest_agent': 'yes'})

    domain = _apply(conf, xml, instance, image_meta)

    assert len(domain_xml.channels(domain, NAME)) == 1
    assert domain_xml.to_xml(domain) == domain_xml.to_xml(
        domain_xml.parse_domain(xml))


def test_respects_existing_channel_with_other_path(conf):
    instance = nova_domain.make_instance()
    domain = domain_xml.parse_domain(nova_domain.make_domain_xml(instance))
    domain_xml.ensure_unix_channel(domain, NAME, '/run/operator/qga.sock')

    agent_channel.AgentChannelHook(conf).apply(
        domain, instance, nova_domain.make_image_meta())

    (channel,) = domain_xml.channels(domain, NAME)
    assert channel.find('source').get('path') == '/run/operator/qga.sock'
