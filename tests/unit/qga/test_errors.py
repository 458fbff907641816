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

"""qga error objects map onto the typed errors the poller reports."""

import pytest

from ceilometer_qga.qga import errors


@pytest.mark.parametrize('error,expected', [
    ({'class': 'CommandNotFound',
      'desc': 'The command guest-get-load has not been found'},
     errors.CommandNotSupported),
    ({'class': 'CommandNotFound',
      'desc': 'Command guest-exec has been disabled'},
     errors.CommandNotSupported),
    ({'class': 'GenericError',
      'desc': 'Command guest-get-fsinfo has been disabled'},
     errors.CommandNotSupported),
    ({'class': 'GenericError', 'desc': 'the agent is in frozen state'},
     errors.AgentFrozen),
    # qemu-ga 7.2's own words while a Nova quiesce holds the filesystems
    ({'class': 'CommandNotFound',
      'desc': 'Command guest-get-fsinfo has been disabled: the agent is in '
              'frozen state'},
     errors.AgentFrozen),
    ({'class': 'GenericError', 'desc': 'open failed: No such file'},
     errors.CommandFailed),
    ({'desc': 12}, errors.CommandFailed),
    ('boom', errors.ProtocolError),
    (None, errors.ProtocolError),
])
def test_error_from_reply(error, expected):
    exc = errors.error_from_reply('g1', 'guest-x', error)
    assert type(exc) is expected
    assert exc.guest == 'g1' and exc.command == 'guest-x'
    assert 'g1' in str(exc) and 'guest-x' in str(exc)


def test_long_descriptions_are_truncated():
    exc = errors.error_from_reply('g', 'c', {'class': 'GenericError',
                                             'desc': 'x' * 100000})
    assert len(exc.message) == 500


def test_states_are_distinct():
    classes = [errors.QgaError, errors.AgentNotConnected, errors.AgentTimeout,
               errors.CommandNotSupported, errors.CommandForbidden,
               errors.CommandFailed, errors.AgentFrozen, errors.ProtocolError]
    assert len({c.state for c in classes}) == len(classes)


def test_agent_error_text_with_a_lone_surrogate_is_mended():
    exc = errors.error_from_reply('g', 'guest-get-fsinfo', {
        'class': 'GenericError', 'desc': 'failed on /mnt\ud800'})
    assert exc.message == 'failed on /mnt\ufffd'
    str(exc).encode('utf-8')
