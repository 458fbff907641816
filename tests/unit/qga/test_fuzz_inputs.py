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

"""Replay the fuzzer's inputs through its harness (``tests/unit/qga/fuzz_framing.py``).

Every file in ``fuzz_inputs/`` is an agent byte stream that once broke a
property of the framing (or pins one down), plus the fuzzer's seeds;
``check_stream`` runs the real ``SocketTransport`` over each and raises if
a property fails.  A crash ``make fuzz`` finds is copied here.
"""

import os

import pytest

from ceilometer_qga.qga import errors
from tests.unit.qga import fuzz_framing

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    'fuzz_inputs')
INPUTS = sorted(os.listdir(HERE))


@pytest.mark.parametrize('name', INPUTS)
def test_saved_input_keeps_the_properties(name):
    with open(os.path.join(HERE, name), 'rb') as f:
        outcomes = fuzz_framing.check_stream(f.read())
    assert outcomes, 'no command ran'


def test_agent_error_is_typed_and_bounded():
    with open(os.path.join(HERE, 'long-non-object-error'), 'rb') as f:
        outcome = fuzz_framing.check_stream(f.read())[0]
    assert isinstance(outcome, errors.ProtocolError)
    assert len(str(outcome)) < 300


@pytest.mark.parametrize('name', sorted(fuzz_framing.SEEDS))
def test_seed(name):
    outcomes = fuzz_framing.check_stream(fuzz_framing.SEEDS[name])
    if name == 'ok':
        assert outcomes[0] == {}
        assert outcomes[1]['version'] == '7.2'
    elif name == 'order':
        assert outcomes[0] == {}
        assert outcomes[1]['version'] == '2.5.0'
    else:
        assert outcomes
