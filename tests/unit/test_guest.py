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
