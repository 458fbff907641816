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

"""The one volume rule (checks.number/valid_volume), seen from every side.

Issue 9: ``guest.load.1 = -0.0`` was published, and used = total = 2**63
gave an orphan ``guest.filesystem.usage = 100``.  Collectors and the sample
factory use the same rule, so a value one refuses the other refuses too,
and the meters of one filesystem stand or fall together.
"""

import pytest

from ceilometer_qga.collectors import checks
from ceilometer_qga.collectors import filesystem
from ceilometer_qga.collectors import load
from tests.unit.collectors import support

INT64_MAX = 2 ** 63 - 1


@pytest.mark.parametrize('value', [-0.0, 2 ** 63, 2 ** 64, float(2 ** 63)])
def test_rule_refuses_negative_zero_and_beyond_int64(value):
    assert not checks.valid_volume(value)
    with pytest.raises(checks.Nonsense):
        checks.number(value, 'x')


@pytest.mark.parametrize('value', [0, 0.0, INT64_MAX, 1.5])
def test_rule_accepts_int64_range(value):
    assert checks.valid_volume(value)


def test_negative_zero_load_is_dropped_not_published():
    result = load.LoadCollector(support.make_conf()).parse(
        {'load1m': -0.0, 'load5m': 0.0, 'load15m': 0.25})
    assert {r.meter: r.volume for r in result.readings} == {
        'guest.load.5': 0.0, 'guest.load.15': 0.25}
    assert any('load1m' in reason for reason in result.dropped)


@pytest.mark.parametrize('used,total', [(2 ** 63, 2 ** 63),
                                        (1, 2 ** 63), (2 ** 63, 2 ** 64)])
def test_filesystem_beyond_int64_loses_all_three_meters(used, total):
    result = filesystem.FilesystemCollector(support.make_conf()).parse([
        {'name': 'vda1', 'mountpoint': '/', 'type': 'ext4',
         'used-bytes': used, 'total-bytes': total},
        {'name': 'vdb1', 'mountpoint': '/srv', 'type': 'ext4',
         'used-bytes': 5, 'total-bytes': INT64_MAX}])
    items = {r.item for r in result.readings}
    assert items == {'/srv'}
    assert len(result.readings) == 3
    assert len(result.dropped) == 1 and "'/'" in result.dropped[0]
