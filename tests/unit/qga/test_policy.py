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

"""The read-only allow-list is enforced before anything reaches a guest."""

import pytest

from ceilometer_qga.qga import errors
from ceilometer_qga.qga import policy

# Every command qemu-ga 7.2 lists in `qemu-ga -b help` that changes the guest.
WRITE_COMMANDS = [
    'guest-shutdown', 'guest-set-time', 'guest-exec', 'guest-exec-status',
    'guest-file-write', 'guest-file-seek', 'guest-file-flush',
    'guest-fsfreeze-freeze', 'guest-fsfreeze-freeze-list',
    'guest-fsfreeze-thaw', 'guest-fstrim', 'guest-suspend-disk',
    'guest-suspend-ram', 'guest-suspend-hybrid', 'guest-set-vcpus',
    'guest-set-memory-blocks', 'guest-set-user-password',
    'guest-ssh-add-authorized-keys', 'guest-ssh-remove-authorized-keys',
    'guest-ssh-get-authorized-keys', 'guest-network-get-route',
]


@pytest.mark.parametrize('command', WRITE_COMMANDS)
def test_state_changing_commands_are_refused(command):
    with pytest.raises(errors.CommandForbidden) as exc:
        policy.check('g1', command, None)
    assert exc.value.guest == 'g1'
    assert exc.value.command == command


@pytest.mark.parametrize('command', sorted(policy.READ_ONLY_COMMANDS - {
    'guest-file-open', 'guest-file-read', 'guest-get-statvfs'}))
def test_read_only_commands_pass(command):
    policy.check('g1', command, None)


@pytest.mark.parametrize('path', sorted(policy.READABLE_FILES))
def test_allow_listed_proc_files_open_read_only(path):
    policy.check('g1', 'guest-file-open', {'path': path, 'mode': 'r'})
    policy.check('g1', 'guest-file-open', {'path': path})


@pytest.mark.parametrize('args', [
    {'path': '/etc/shadow', 'mode': 'r'},
    {'path': '/proc/meminfo/../../etc/shadow', 'mode': 'r'},
    {'path': '/proc/meminfo', 'mode': 'w'},
    {'path': '/proc/meminfo', 'mode': 'r+'},
    {'path': '/proc/meminfo', 'mode': 'a'},
    {'path': None},
    {},
])
def test_file_open_outside_the_allow_list_is_refused(args):
    with pytest.raises(errors.CommandForbidden):
        policy.check('g1', 'guest-file-open', args)


@pytest.mark.parametrize('count', [0, -1, policy.MAX_FILE_READ + 1, '10',
                                   1.5, True])
def test_file_read_count_is_bounded(count):
    with pytest.raises(errors.CommandForbidden):
        policy.check('g1', 'guest-file-read', {'handle': 1, 'count': count})


def test_file_read_default_count_is_fine():
    policy.check('g1', 'guest-file-read', {'handle': 1})
