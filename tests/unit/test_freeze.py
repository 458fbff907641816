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

"""The freeze rules (ceilometer_qga/freeze.py): pure, no guest.

Capabilities as qemu-ga 7.2 lists them thawed and after
``guest-fsfreeze-freeze`` (``ga_set_frozen`` in QEMU 7.2's ``qga/main.c``
disables all but ``ga_freeze_allowlist``).
"""

import pytest

from ceilometer_qga import freeze
from ceilometer_qga.qga import capabilities
from ceilometer_qga.qga import errors

DATA = frozenset({'guest-get-load', 'guest-get-fsinfo'})
THAWED = capabilities.Capabilities('7.2.0', freeze.SAFE | DATA, frozenset())
FROZEN = capabilities.Capabilities('7.2.0', freeze.SAFE, DATA)


@pytest.mark.parametrize('status, caps, expected', [
    ('thawed', THAWED, (False, False)),
    ('frozen', THAWED, (True, True)),       # froze after guest-info
    ('thawed', FROZEN, (False, True)),      # thawed after guest-info
    ('frozen', FROZEN, (True, True)),
    (None, THAWED, (False, False)),         # status not offered
    (None, FROZEN, (True, True)),           # cannot say: caps decide
    (errors.CommandNotSupported('g', freeze.STATUS_COMMAND, 'blocked'),
     FROZEN, (True, True)),
    ('garbage', THAWED, (False, False)),
])
def test_judge(status, caps, expected):
    assert freeze.judge(status, caps) == expected
