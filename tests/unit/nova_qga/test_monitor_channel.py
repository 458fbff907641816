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

"""Tests of the monitor_channel hook over Nova-generated domain XML."""

from __future__ import annotations

import os

import pytest

from nova_qga import domain_xml
from nova_qga.hooks import base
from nova_qga.hooks import monitor_channel
from tests.fixtures import nova_domain

NAME = 'org.openstack.monitor.0'


def _apply(conf, xml, instance):
    domain = domain_xml.parse_domain(xml)
    monitor_channel.MonitorChannelHook(conf).apply(
        domain, instance, nova_domain.make_image_meta())
    return domain


def test_adds_monitor_channel_at_uuid_socket(conf, socket_dir):
    instance = nova_domain.make_instance()
    domain = _apply(conf, nova_domain.make_domain_xml(instance), instance)

    (channel,) = domain_xml.channels(domain, NAME)
    assert channel.get('type') == 'unix'
    assert channel.find('source').attrib == {
        'mode': 'bind',
        'path': os.path.join(socket_dir, instance.uuid + '.sock')}
    assert channel.find('target').attrib == {'type': 'virtio', 'name': NAME}


def test_configured_channel_name(conf):
    conf.set_override('monitor_channel_name', 'org.example.mon.1',
                      group='qga')
    instance = nova_domain.make_instance()
    domain = _apply(conf, nova_domain.make_domain_xml(instance), instance)
    assert len(domain_xml.channels(domain, 'org.example.mon.1')) == 1
    assert domain_xml.channels(domain, NAME) == []


def test_idempotent(conf):
    instance = nova_domain.make_instance()
    once = _apply(conf, nova_domain.make_domain_xml(instance), instance)
    twice = _apply(conf, domain_xml.to_xml(once), instance)
    assert domain_xml.to_xml(twice) == domain_xml.to_xml(once)
    assert len(domain_xml.channels(twice, NAME)) == 1


def test_keeps_nova_agent_channel(conf):
    instance = nova_domain.make_instance()
    xml = nova_domain.make_domain_xml(instance, nova_agent_channel=True)
    domain = _apply(conf, xml, instance)
    assert len(domain_xml.channels(domain, 'org.qemu.guest_agent.0')) == 1
    assert len(domain_xml.channels(domain, NAME)) == 1


def test_existing_channel_needs_no_socket_dir(conf, tmp_path):
    """A domain that has the channel is left alone even if the dir left."""
    instance = nova_domain.make_instance()
    once = _apply(conf, nova_domain.make_domain_xml(instance), instance)
    conf.set_override('socket_dir', str(tmp_path / 'gone'), group='qga')
    twice = _apply(conf, domain_xml.to_xml(once), instance)
    assert domain_xml.to_xml(twice) == domain_xml.to_xml(once)


@pytest.mark.parametrize('make_unfit, reason', [
    (lambda d: os.rmdir(d), 'does not exist'),
    (lambda d: os.chmod(d, 0o2775), 'open to other users'),
    (lambda d: os.chmod(d, 0o771), 'open to other users'),
])
def test_unfit_socket_dir_is_a_hook_error(conf, socket_dir, make_unfit,
                                          reason):
    make_unfit(socket_dir)
    instance = nova_domain.make_instance()
    domain = domain_xml.parse_domain(nova_domain.make_domain_xml(instance))
    with pytest.raises(base.HookError, match=reason):
        monitor_channel.MonitorChannelHook(conf).apply(
            domain, instance, nova_domain.make_image_meta())
    assert domain_xml.channels(domain, NAME) == []
