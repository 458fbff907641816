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

"""``qga-probe``'s pure parts: finding a guest by name, ordering rows."""

import pytest

from ceilometer_qga.cmd import probe
from ceilometer_qga.guest import Guest

A = Guest(instance_id='3c9f1a2e-5b4d-4e6f-8a7b-0c1d2e3f4a5b',
          name='instance-0000000a', display_name='web')
B = Guest(instance_id='4d0a2b3f-6c5e-4f7a-9b8c-1d2e3f4a5b6c',
          name='instance-0000000b', display_name='web')
C = Guest(instance_id='5e1b3c4a-7d6f-4a8b-8c9d-2e3f4a5b6c7d',
          name='instance-0000000c', display_name=None)


@pytest.mark.parametrize('key,expected', [
    (A.instance_id, [A]),
    (A.instance_id.upper(), [A]),
    ('instance-0000000b', [B]),
    ('web', [A, B]),
    ('Web', []),
    ('instance-0000000', []),
    ('', []),
])
def test_find_guests(key, expected):
    assert probe.find_guests([A, B, C], key) == expected


def test_rows_sort_unhealthy_first_then_legacy_then_ok():
    def row(name, state):
        return {'display_name': name, 'name': 'instance-' + name,
                'instance_id': name, 'state': state}
    rows = [row('a', 'ok'), row('b', 'legacy'), row('c', 'timeout'),
            row('d', 'frozen'), row('e', 'ok')]
    ordered = sorted(rows, key=probe.sort_key)
    assert [r['display_name'] for r in ordered] == ['c', 'd', 'b', 'a', 'e']


def test_table_right_aligns_the_given_columns():
    text = probe.table(('name', 'ms'), [('a', '1.5'), ('bbb', '10.25')],
                       right=(1,))
    assert text.splitlines() == ['name     ms', '----  -----',
                                 'a       1.5', 'bbb   10.25']
