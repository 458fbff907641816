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

"""Tests of the hook chain: loading, order, opt-out, virt types, failures."""

from __future__ import annotations

import logging

import pytest

from nova_qga import domain_xml
from nova_qga import hook_chain
from nova_qga.hooks import agent_channel
from nova_qga.hooks import base
from nova_qga.hooks import monitor_channel
from tests.fixtures import nova_domain

AGENT = 'org.qemu.guest_agent.0'
MONITOR = 'org.openstack.monitor.0'


class ExplodingHook(base.DomainHook):
    """Edits the domain, then fails: none of its edits may survive."""

    def apply(self, domain, instance, image_meta):
        domain_xml.ensure_unix_channel(domain, 'org.example.half.0', '/x')
        raise RuntimeError('hook bug')


class RefusingHook(base.DomainHook):
    def apply(self, domain, instance, image_meta):
        raise base.HookError('not today')


def _chain(conf, *names_and_classes):
    return hook_chain.HookChain(
        conf, [(name, cls(conf)) for name, cls in names_and_classes])


def _both(conf):
    return _chain(conf, ('agent_channel', agent_channel.AgentChannelHook),
                  ('monitor_channel', monitor_channel.MonitorChannelHook))


def _run(chain, instance, **kwargs):
    xml = nova_domain.make_domain_xml(instance, **kwargs)
    return xml, chain.apply(xml, instance, nova_domain.make_image_meta())


def test_load_uses_entry_points_in_configured_order(conf):
    conf.set_override('domain_hooks', ['monitor_channel', 'agent_channel'],
                      group='qga')
    chain = hook_chain.HookChain.load(conf)
    assert chain.names == ['monitor_channel', 'agent_channel']
    assert isinstance(chain.hooks[0][1], monitor_channel.MonitorChannelHook)
    assert isinstance(chain.hooks[1][1], agent_channel.AgentChannelHook)


def test_load_default_hooks(conf):
    assert hook_chain.HookChain.load(conf).names == ['agent_channel',
                                                     'monitor_channel']


def test_load_unknown_hook_names_the_option(conf):
    conf.set_override('domain_hooks', ['agent_channel', 'agent_chanel'],
                      group='qga')
    with pytest.raises(hook_chain.HookLoadError) as err:
        hook_chain.HookChain.load(conf)
    message = str(err.value)
    assert '[qga] domain_hooks' in message
    assert 'agent_chanel' in message
    assert 'agent_channel, monitor_channel' in message


def test_no_hooks_leaves_xml_untouched(conf):
    conf.set_override('domain_hooks', [], group='qga')
    chain = hook_chain.HookChain.load(conf)
    instance = nova_domain.make_instance()
    xml, result = _run(chain, instance)
    assert result is xml


def test_both_channels_once_each(conf, socket_dir):
    instance = nova_domain.make_instance()
    _xml, result = _run(_both(conf), instance)
    domain = domain_xml.parse_domain(result)
    assert len(domain_xml.channels(domain, AGENT)) == 1
    (monitor,) = domain_xml.channels(domain, MONITOR)
    assert monitor.find('source').get('path') == (
        '%s/%s.sock' % (socket_dir, instance.uuid))


def test_chain_is_idempotent(conf):
    chain = _both(conf)
    instance = nova_domain.make_instance()
    _xml, once = _run(chain, instance)
    twice = chain.apply(once, instance, nova_domain.make_image_meta())
    assert twice == once


def test_chain_keeps_nova_metadata(conf):
    instance = nova_domain.make_instance(extra_specs={'hw:cpu_policy': 'shared'})
    xml, result = _run(_both(conf), instance)
    before = domain_xml.parse_domain(xml)
    after = domain_xml.parse_domain(result)
    for domain in (before, after):
        for channel in domain.findall('devices/channel'):
            channel.getparent().remove(channel)
    assert domain_xml.to_xml(after) == domain_xml.to_xml(before)


def test_hw_qemu_guest_agent_channel_not_duplicated(conf):
    instance = nova_domain.make_instance(
        image_properties={'hw_qemu_guest_agent': 'yes'})
    _xml, result = _run(_both(conf), instance, nova_agent_channel=True)
    domain = domain_xml.parse_domain(result)
    assert len(domain_xml.channels(domain, AGENT)) == 1
    assert len(domain_xml.channels(domain, MONITOR)) == 1


@pytest.mark.parametrize('where', ['extra_specs', 'image_properties'])
def test_opt_out_skips_both_hooks(conf, caplog, where):
    caplog.set_level(logging.INFO, logger='nova_qga')
    instance = nova_domain.make_instance(**{where: {'qga:monitor': 'false'}})
    xml, result = _run(_both(conf), instance)
    assert result is xml
    assert 'opted out' in caplog.text
    assert instance.uuid in caplog.text


def test_opt_out_ignored_when_not_allowed(conf):
    conf.set_override('allow_opt_out', False, group='qga')
    instance = nova_domain.make_instance(
        extra_specs={'qga:monitor': 'false'})
    _xml, result = _run(_both(conf), instance)
    domain = domain_xml.parse_domain(result)
    assert len(domain_xml.channels(domain, AGENT)) == 1
    assert len(domain_xml.channels(domain, MONITOR)) == 1


def test_bad_opt_out_value_logged_and_hooks_applied(conf, caplog):
    instance = nova_domain.make_instance(
        extra_specs={'qga:monitor': 'sometimes'})
    _xml, result = _run(_both(conf), instance)

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert instance.uuid in message
    assert "qga:monitor='sometimes'" in message
    domain = domain_xml.parse_domain(result)
    assert len(domain_xml.channels(domain, AGENT)) == 1
    assert len(domain_xml.channels(domain, MONITOR)) == 1


@pytest.mark.parametrize('virt_type', ['lxc', 'parallels'])
def test_other_virt_types_unchanged_and_logged_once(conf, caplog, virt_type):
    caplog.set_level(logging.INFO, logger='nova_qga')
    chain = _both(conf)
    instance = nova_domain.make_instance()
    for _ in range(3):
        xml, result = _run(chain, instance, virt_type=virt_type)
        assert result is xml
    lines = [r for r in caplog.records if virt_type in r.getMessage()]
    assert len(lines) == 1


def test_qemu_virt_type_is_supported(conf):
    instance = nova_domain.make_instance()
    _xml, result = _run(_both(conf), instance, virt_type='qemu')
    assert len(domain_xml.channels(domain_xml.parse_domain(result),
                                   AGENT)) == 1


def test_failing_hook_does_not_fail_the_chain(conf, caplog):
    chain = _chain(conf, ('agent_channel', agent_channel.AgentChannelHook),
                   ('exploding', ExplodingHook),
                   ('monitor_channel', monitor_channel.MonitorChannelHook))
    instance = nova_domain.make_instance()
    _xml, result = _run(chain, instance)

    domain = domain_xml.parse_domain(result)
    assert len(domain_xml.channels(domain, AGENT)) == 1
    assert len(domain_xml.channels(domain, MONITOR)) == 1
    assert domain_xml.channels(domain, 'org.example.half.0') == []
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert 'exploding' in error.getMessage()
    assert instance.uuid in error.getMessage()
    assert error.exc_info is not None


def test_hook_error_is_one_line(conf, caplog):
    chain = _chain(conf, ('refusing', RefusingHook),
                   ('agent_channel', agent_channel.AgentChannelHook))
    instance = nova_domain.make_instance()
    _xml, result = _run(chain, instance)
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.exc_info is None
    assert 'not today' in error.getMessage()
    assert instance.uuid in error.getMessage()
    assert len(domain_xml.channels(domain_xml.parse_domain(result),
                                   AGENT)) == 1


def test_unfit_socket_dir_costs_only_the_monitor_channel(conf, socket_dir,
                                                         caplog):
    import os
    os.chmod(socket_dir, 0o777)
    instance = nova_domain.make_instance()
    _xml, result = _run(_both(conf), instance)
    domain = domain_xml.parse_domain(result)
    assert len(domain_xml.channels(domain, AGENT)) == 1
    assert domain_xml.channels(domain, MONITOR) == []
    assert 'open to other users' in caplog.text


def test_unparsable_xml_returned_unchanged(conf, caplog):
    instance = nova_domain.make_instance()
    assert _both(conf).apply('<domain', instance, None) == '<domain'
    assert instance.uuid in caplog.text


def test_nova_half_imports_nothing_of_the_poller():
    """nova_qga and ceilometer_qga meet only in the guest (architecture.rst).

    The driver's modules load with ``ceilometer_qga`` made unimportable.
    """
    import subprocess
    import sys
    blocker = (
        'import sys\n'
        'class NoPoller:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name.split(".")[0] == "ceilometer_qga":\n'
        '            raise ImportError("ceilometer_qga is not here")\n'
        'sys.meta_path.insert(0, NoPoller())\n'
        'from nova_qga import conf, driver, hook_chain\n'
        'from oslo_config import cfg\n'
        'opts = cfg.ConfigOpts()\n'
        'conf.register_opts(opts)\n'
        'opts([], default_config_files=[])\n'
        'print(",".join(hook_chain.HookChain.load(opts).names))\n')
    result = subprocess.run([sys.executable, '-c', blocker],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == \
        'agent_channel,monitor_channel'
