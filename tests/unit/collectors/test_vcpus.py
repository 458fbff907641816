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

"""VcpusCollector on a real qemu-ga 7.2 reply and on nonsense."""

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import vcpus
from tests.unit.collectors import support


def _collector():
    return vcpus.VcpusCollector(support.make_conf())


def _vcpu(logical_id, online=True):
    return {'logical-id': logical_id, 'online': online,
            'can-offline': logical_id != 0}


def test_real_capture_two_online():
    collector = _collector()
    result = collector.parse(support.load_json('vcpus.json'))
    support.assert_sane(collector, result)
    [reading] = result.readings
    assert reading.meter == 'guest.vcpus.online'
    assert reading.volume == 2
    assert isinstance(reading.volume, int) and reading.volume is not True
    assert reading.metadata == {'vcpus_listed': 2}


def test_offline_cpu_is_not_counted():
    result = _collector().parse([_vcpu(0), _vcpu(1, False), _vcpu(2)])
    assert support.by_meter(result) == {'guest.vcpus.online': 2}
    assert result.readings[0].metadata == {'vcpus_listed': 3}


@pytest.mark.parametrize('reply, reason', [
    ([], 'listed no CPU'),
    ([_vcpu(0), 'cpu1'], 'vcpu #1 is not an object'),
    ([_vcpu(0), _vcpu(1, 1)], 'vcpu 1 online is not a boolean'),
    ([_vcpu(0), _vcpu(1, 'yes')], 'vcpu 1 online is not a boolean'),
    ([_vcpu(0), _vcpu(1, None)], 'vcpu 1 online is not a boolean'),
    ([_vcpu(0), _vcpu(0)], 'vcpu 0 is listed twice'),
    ([_vcpu(0), _vcpu(-1)], 'vcpu #1 has no valid logical-id'),
    ([_vcpu(0), _vcpu(True)], 'vcpu #1 has no valid logical-id'),
    ([_vcpu(0), _vcpu('1')], 'vcpu #1 has no valid logical-id'),
])
def test_any_bad_entry_drops_the_count(reply, reason):
    collector = _collector()
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert result.readings == []
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


@pytest.mark.parametrize('reply', [None, {'logical-id': 0}, 2])
def test_reply_that_is_not_a_list_is_a_bad_reply(reply):
    with pytest.raises(base.BadReply, match='guest-get-vcpus'):
        _collector().parse(reply)
