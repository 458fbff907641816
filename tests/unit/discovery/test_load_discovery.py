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

"""load_discovery: plugins come from the entry points, errors name options."""

from __future__ import annotations

import socket

from oslo_config import cfg
import pytest

from ceilometer_qga import discovery
from ceilometer_qga.discovery import libvirt as lv_discovery
from ceilometer_qga.discovery import static
from ceilometer_qga import plugins

UUID = '0b6e4f3c-2a1d-4c5e-8f7a-9b0c1d2e3f4a'


def test_known_names_are_the_entry_points():
    assert plugins.known_names(discovery.NAMESPACE) == ['libvirt', 'static']


def test_loads_static_with_its_config(make_conf):
    conf = make_conf(qga_polling={'discovery': 'static'},
                     static_discovery={'guests': ['%s=/a.sock' % UUID]})
    disco = discovery.load_discovery(conf)
    assert type(disco) is static.StaticDiscovery
    assert [g.instance_id for g in disco.discover()] == [UUID]


def test_loads_libvirt_by_default(make_conf):
    conf = make_conf(libvirt_discovery={'uri': 'test:///default'})
    disco = discovery.load_discovery(conf)
    try:
        assert type(disco) is lv_discovery.LibvirtDiscovery
        # the built-in domain 'test' is not Nova's
        assert disco.discover() == []
    finally:
        disco.close()


def test_each_plugin_gets_its_own_group(make_conf):
    """os-vif's contract: CONFIG_OPTS registered in [<name>_discovery] and
    handed to the plugin, which reads no other plugin's group.
    """
    conf = make_conf(qga_polling={'discovery': 'static'},
                     static_discovery={'guests': ['%s=/a.sock' % UUID]})
    disco = discovery.load_discovery(conf)
    assert disco.opts.guests == ['%s=/a.sock' % UUID]
    assert [o.name for o in static.StaticDiscovery.CONFIG_OPTS] == [
        'guests', 'project_id', 'user_id', 'flavor_id', 'flavor_name']
    assert [o.name for o in lv_discovery.LibvirtDiscovery.CONFIG_OPTS] == [
        'uri']
    # the groups come from the plugins, for oslo-config-generator too
    groups = dict(plugins.installed_opts(discovery.NAMESPACE,
                                         discovery.GROUP_SUFFIX))
    assert groups == {'libvirt_discovery': lv_discovery.OPTS,
                      'static_discovery': static.OPTS}


def test_libvirt_uri_is_asked_of_the_plugin(make_conf):
    """Who needs the hypervisor before any guest (the libvirt event
    listener, qga-probe's messages) asks the discovery, without building
    it (no connection opened).
    """
    conf = make_conf(libvirt_discovery={'uri': 'qemu+tcp://nowhere/system'})
    assert discovery.libvirt_uri(conf) == 'qemu+tcp://nowhere/system'
    conf.set_override('discovery', 'static', 'qga_polling')
    assert discovery.libvirt_uri(conf) is None


def test_unknown_name_lists_the_known_ones(make_conf):
    conf = make_conf(qga_polling={'discovery': 'nova-api'})
    with pytest.raises(ValueError) as err:
        discovery.load_discovery(conf)
    assert str(err.value) == (
        "[qga_polling] discovery = 'nova-api': no such discovery plugin; "
        "known: libvirt, static")


def test_plugin_config_error_comes_through(make_conf):
    conf = make_conf(qga_polling={'discovery': 'static'},
                     static_discovery={'guests': ['nonsense']})
    with pytest.raises(ValueError, match=r'^\[static_discovery\] guests: '):
        discovery.load_discovery(conf)


def test_host_name(make_conf):
    conf = make_conf()
    assert discovery.host_name(conf) == socket.gethostname()
    conf.set_override('host', 'compute-7')
    assert discovery.host_name(conf) == 'compute-7'
    bare = cfg.ConfigOpts()  # a service that has no [DEFAULT] host at all
    bare([])
    assert discovery.host_name(bare) == socket.gethostname()
    conf.set_override('host', '')
    assert discovery.host_name(conf) == socket.gethostname()
