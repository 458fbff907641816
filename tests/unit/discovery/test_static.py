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

"""StaticDiscovery: parsing and checking ``[static_discovery] guests``."""

from __future__ import annotations

import socket

import pytest

from ceilometer_qga.discovery import static
from ceilometer_qga.guest import Channel

UUID_A = '0b6e4f3c-2a1d-4c5e-8f7a-9b0c1d2e3f4a'
UUID_B = '7d9a8b6c-5e4f-4a3b-9c2d-1e0f9a8b7c6d'


def build(conf):
    """The plugin with its own group, as the loader hands it."""
    return static.StaticDiscovery(conf, conf.static_discovery)


def test_guests_from_config(make_conf):
    conf = make_conf(static_discovery={'guests': [
        '%s=/run/qga/a.sock' % UUID_A,
        # whitespace around items and a non-canonical uuid are accepted
        ' {%s} = /run/qga/b.sock ' % UUID_B.upper(),
    ]})
    guests = static.StaticDiscovery(conf, conf.static_discovery).discover()

    assert [g.instance_id for g in guests] == [UUID_A, UUID_B]
    a, b = guests
    assert a.name == UUID_A
    assert a.channels == (Channel(target_name='org.openstack.monitor.0',
                                  path='/run/qga/a.sock', state=None),)
    assert b.channel('org.openstack.monitor.0').path == '/run/qga/b.sock'
    # What Gnocchi's instance type requires is there by default
    # (flavor "unknown"); no owner unless configured.
    assert a.metadata == {'instance_id': UUID_A, 'name': UUID_A,
                          'display_name': UUID_A,
                          'host': socket.gethostname(),
                          'instance_host': socket.gethostname(),
                          'flavor': {'id': 'unknown', 'name': 'unknown'},
                          'instance_type': 'unknown'}
    assert a.display_name is None
    assert a.project_id is None and a.user_id is None


def test_owner_and_flavor_from_config(make_conf):
    conf = make_conf(static_discovery={
        'guests': ['%s=/a.sock' % UUID_A], 'project_id': 'p-1',
        'user_id': 'u-1', 'flavor_id': '42', 'flavor_name': 'm1.tiny'})
    (guest,) = static.StaticDiscovery(conf, conf.static_discovery).discover()
    assert (guest.project_id, guest.user_id) == ('p-1', 'u-1')
    assert guest.metadata['flavor'] == {'id': '42', 'name': 'm1.tiny'}
    assert guest.metadata['instance_type'] == 'm1.tiny'


def test_channel_name_follows_option(make_conf):
    conf = make_conf(
        static_discovery={'guests': ['%s=/run/a.sock' % UUID_A]},
        qga_polling={'monitor_channel_name': 'org.example.mon.1'})
    (guest,) = static.StaticDiscovery(conf, conf.static_discovery).discover()
    assert [c.target_name for c in guest.channels] == ['org.example.mon.1']


def test_host_option_wins_over_hostname(make_conf):
    conf = make_conf(static_discovery={'guests': ['%s=/a.sock' % UUID_A]})
    conf.set_override('host', 'compute-7')
    (guest,) = static.StaticDiscovery(conf, conf.static_discovery).discover()
    assert guest.metadata['host'] == 'compute-7'


def test_each_discover_returns_fresh_objects(make_conf):
    conf = make_conf(static_discovery={'guests': ['%s=/a.sock' % UUID_A]})
    disco = static.StaticDiscovery(conf, conf.static_discovery)
    first = disco.discover()
    first[0].metadata['state'] = 'scribbled'
    first[0].metadata['flavor']['name'] = 'scribbled'
    first.clear()
    (again,) = disco.discover()
    assert 'state' not in again.metadata
    assert again.metadata['flavor']['name'] == 'unknown'


def test_empty_list_is_no_guests(make_conf):
    assert build(make_conf()).discover() == []


@pytest.mark.parametrize('item, why', [
    ('%s' % UUID_A, 'expected INSTANCE_UUID=SOCKET_PATH'),
    ('not-a-uuid=/a.sock', "'not-a-uuid' is not a uuid"),
    ('=/a.sock', "'' is not a uuid"),
    ('%s=' % UUID_A, 'the socket path is empty'),
    ('%s=relative/a.sock' % UUID_A, 'must be absolute'),
    ('%s=/a\0b.sock' % UUID_A, 'NUL byte'),
    ('%s=/%s.sock' % (UUID_A, 'x' * 120), 'longer than 107 bytes'),
])
def test_bad_item_names_option_and_item(make_conf, item, why):
    conf = make_conf(static_discovery={'guests': [item]})
    with pytest.raises(ValueError) as err:
        static.StaticDiscovery(conf, conf.static_discovery)
    msg = str(err.value)
    assert msg.startswith('[static_discovery] guests: item %r: ' % item)
    assert why in msg


def test_duplicate_uuid_is_refused(make_conf):
    conf = make_conf(static_discovery={'guests': [
        '%s=/a.sock' % UUID_A, '%s=/b.sock' % UUID_A.upper()]})
    with pytest.raises(ValueError) as err:
        static.StaticDiscovery(conf, conf.static_discovery)
    assert str(err.value) == (
        "[static_discovery] guests: item '%s=/b.sock': instance %s is "
        "already listed as '%s=/a.sock'" % (UUID_A.upper(), UUID_A, UUID_A))


def test_duplicate_socket_is_refused(make_conf):
    conf = make_conf(static_discovery={'guests': [
        '%s=/a.sock' % UUID_A, '%s=/a.sock' % UUID_B]})
    with pytest.raises(ValueError) as err:
        static.StaticDiscovery(conf, conf.static_discovery)
    assert str(err.value) == (
        "[static_discovery] guests: item '%s=/a.sock': socket /a.sock is "
        "already listed as '%s=/a.sock'" % (UUID_B, UUID_A))


def test_longest_allowed_socket_path(make_conf):
    path = '/' + 'p' * 106
    assert static.parse_item('%s=%s' % (UUID_A, path)) == (UUID_A, path)


def test_no_project_for_the_bus_is_a_warning(make_conf, caplog):
    """Ceilometer's Gnocchi publisher would write the null project over Nova's."""
    guests = {'guests': ['%s=/a.sock' % UUID_A]}
    build(make_conf(static_discovery=guests))
    assert '[static_discovery] project_id is not set' in caplog.text
    caplog.clear()
    build(make_conf(static_discovery=dict(guests, project_id='p-1')))
    build(make_conf(static_discovery=guests,
                    qga_polling={'publishers': ['file:///tmp/x']}))
    assert 'project_id' not in caplog.text


def test_discover_one_is_the_listed_guest_or_none(make_conf):
    """The contract's default ``discover_one``: what ``discover`` lists."""
    conf = make_conf(static_discovery={'guests': [
        '%s=/run/qga/a.sock' % UUID_A]})
    disco = build(conf)
    assert disco.discover_one(UUID_A) == disco.discover()[0]
    assert disco.discover_one(UUID_B) is None
