"""What discovery knows about a guest: channels, legacy guests."""

import pytest

from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.guest import STANDARD_CHANNEL

MONITOR = 'org.openstack.monitor.0'


@pytest.mark.parametrize('channels,expected', [
    ((), False),
    ((Channel('org.spice-space.webdav.0', '/run/x.sock'),), False),
    ((Channel(STANDARD_CHANNEL),), True),
    ((Channel(MONITOR, '/run/m.sock', 'disconnected'),), True),
    ((Channel('com.redhat.spice.0'), Channel(STANDARD_CHANNEL)), True),
])
def test_has_agent_channel(channels, expected):
    guest = Guest(instance_id='u', name='instance-1', channels=channels)
    assert guest.has_agent_channel(MONITOR) is expected


def test_another_monitor_channel_name_is_not_an_agent_channel():
    guest = Guest(instance_id='u', name='i', channels=(Channel(MONITOR, '/m'),))
    assert not guest.has_agent_channel('org.example.other.0')
