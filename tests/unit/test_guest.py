"""Guest.is_legacy: the one fact that makes a guest an old-way guest."""

import pytest

from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.guest import STANDARD_CHANNEL

MONITOR = 'org.openstack.monitor.0'


@pytest.mark.parametrize('channels,legacy', [
    ((), True),
    # another unix virtio channel (a vendor's) is not an agent channel
    ((Channel('com.example.vendor.0', '/run/x.sock'),), True),
    ((Channel(STANDARD_CHANNEL, None, 'disconnected'),), False),
    ((Channel(MONITOR, '/run/m.sock'),), False),
    ((Channel('org.example.other.0', '/run/o.sock'),
      Channel(MONITOR, None)), False),
])
def test_legacy_means_no_agent_channel_at_all(channels, legacy):
    guest = Guest('0b0e6c4e-5f4a-4b6f-9d55-1f1a2b3c4d5e', 'i-1',
                  channels=channels)
    assert guest.is_legacy(MONITOR) is legacy


def test_the_monitor_channel_name_is_the_configured_one():
    guest = Guest('0b0e6c4e-5f4a-4b6f-9d55-1f1a2b3c4d5e', 'i-1',
                  channels=(Channel('org.example.mon.0', '/run/m.sock'),))
    assert not guest.is_legacy('org.example.mon.0')
    assert guest.is_legacy(MONITOR)
