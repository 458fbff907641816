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

"""[qga_polling] transport: which channel and transport each guest gets."""

from oslo_config import cfg
import pytest

from ceilometer_qga import conf as conf_mod
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.qga import selection
from ceilometer_qga.qga import transport_libvirt
from ceilometer_qga.qga import transport_socket

UUID = '6b1f5d0e-2c3a-4d5e-8f90-a1b2c3d4e5f6'
MON = 'org.openstack.monitor.0'
STD = 'org.qemu.guest_agent.0'


def factory(mode):
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='qga-test')
    conf.set_override('transport', mode, 'qga_polling')
    return selection.TransportSelector(conf)


def guest(*channels):
    return Guest(UUID, 'instance-1', channels=tuple(channels),
                 libvirt_uri='test:///default')


@pytest.mark.parametrize('mode,channels,kind,target', [
    ('auto', [Channel(STD, '/s', 'connected'),
              Channel(MON, '/m', 'connected')], 'socket', MON),
    ('auto', [Channel(STD, '/s', 'connected'),
              Channel(MON, '/m', None)], 'socket', MON),
    # stock image: the dedicated port stays closed -> through libvirt
    ('auto', [Channel(STD, '/s', 'connected'),
              Channel(MON, '/m', 'disconnected')], 'libvirt', STD),
    # no standard channel to fall back on: keep the dedicated one
    ('auto', [Channel(MON, '/m', 'disconnected')], 'socket', MON),
    ('auto', [Channel(STD, None, 'connected')], 'libvirt', STD),
    ('auto', [Channel(MON, None, 'connected'),
              Channel(STD, None, None)], 'libvirt', STD),
    ('libvirt', [Channel(STD, '/s', 'connected'),
                 Channel(MON, '/m', 'connected')], 'libvirt', STD),
    ('socket', [Channel(STD, '/s', 'connected'),
                Channel(MON, '/m', 'disconnected')], 'socket', MON),
])
def test_choice(mode, channels, kind, target):
    f = factory(mode)
    try:
        transport, channel, reason = f.make(guest(*channels))
        expected = {'socket': transport_socket.SocketTransport,
                    'libvirt': transport_libvirt.LibvirtTransport}[kind]
        assert isinstance(transport, expected)
        assert channel.target_name == target and reason == ''
    finally:
        f.close()


@pytest.mark.parametrize('mode,channels,reason', [
    ('socket', [Channel(STD, '/s', 'connected')], 'no org.openstack'),
    ('socket', [Channel(MON, None, 'connected')], 'no org.openstack'),
    ('auto', [], 'no guest-agent channel'),
    ('libvirt', [Channel(MON, '/m', 'connected')], 'no guest-agent channel'),
])
def test_no_transport(mode, channels, reason):
    f = factory(mode)
    transport, channel, why = f.make(guest(*channels))
    assert transport is None and channel is None
    assert reason in why


def test_no_libvirt_uri_no_libvirt_transport():
    """A standard channel on a guest not found through libvirt: no URI to
    reach its agent through, so no transport (and no option is guessed).
    """
    f = factory('libvirt')
    bare = Guest(UUID, 'instance-1',
                 channels=(Channel(STD, '/s', 'connected'),))
    transport, channel, why = f.make(bare)
    assert transport is None and channel is None
    assert 'not found through libvirt' in why


def test_libvirt_transport_uses_the_guests_hypervisor():
    """The URI is the one each guest was discovered on, not an option; one
    pool per hypervisor, sized by [libvirt_transport] max_threads.
    """
    f = factory('libvirt')
    f.conf.set_override('uri', 'qemu+tcp://elsewhere/system',
                        'libvirt_discovery')
    f.conf.set_override('max_threads', 3, 'libvirt_transport')
    try:
        made = [f.make(Guest(UUID, 'instance-1',
                             channels=(Channel(STD, None, 'connected'),),
                             libvirt_uri=uri))[0]
                for uri in ('test:///default', 'test:///other',
                            'test:///default')]
        assert [t.connection.uri for t in made] == [
            'test:///default', 'test:///other', 'test:///default']
        assert made[0].connection is made[2].connection
        assert made[0].connection is not made[1].connection
        assert {t.connection.max_threads for t in made} == {3}
    finally:
        f.close()
