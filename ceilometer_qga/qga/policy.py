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

"""What the poller may ever send to a guest: the read-only allow-list.

The guest agent can shut the guest down, write files, run programs and set
passwords.  A monitoring poller needs none of that, so every transport calls
:func:`check` before anything reaches the wire: a command that is not listed
here is refused in the client, whatever the caller asked for.

``guest-file-open`` is a special case: it is allowed only for the /proc files
in :data:`READABLE_FILES`, and only in mode ``r``.  ``guest-file-read`` and
``guest-file-close`` act on a handle and cannot widen that.

``guest-get-statvfs`` is not in upstream qemu-ga: it is the command of a
patched agent (``{"path": str}`` -> the ``statvfs(3)`` fields) that some
guests with agents older than 3.0 (no sizes in ``guest-get-fsinfo``) run.
It only reads; its one argument must be an absolute path.
"""

from __future__ import annotations

from typing import Any

from ceilometer_qga.qga import errors

#: Commands that only read guest state.  Nothing here changes the guest.
READ_ONLY_COMMANDS = frozenset({
    'guest-sync-delimited',
    'guest-sync',
    'guest-ping',
    'guest-info',
    'guest-get-osinfo',
    'guest-get-host-name',
    'guest-get-timezone',
    'guest-get-time',
    'guest-get-users',
    'guest-get-fsinfo',
    'guest-get-disks',
    'guest-get-diskstats',
    'guest-get-cpustats',
    'guest-get-load',
    'guest-get-vcpus',
    'guest-get-memory-block-info',
    'guest-network-get-interfaces',
    'guest-fsfreeze-status',
    'guest-file-open',
    'guest-file-read',
    'guest-file-close',
    'guest-get-statvfs',
})

#: The only files ``guest-file-open`` may name.
READABLE_FILES = frozenset({
    '/proc/meminfo',
    '/proc/stat',
    '/proc/loadavg',
    '/proc/diskstats',
    '/proc/net/dev',
    '/proc/mounts',
})

#: Longest path ``guest-get-statvfs`` may name (Linux PATH_MAX).
MAX_PATH = 4096

#: Largest ``count`` a ``guest-file-read`` may ask for (the /proc files
#: above are a few KiB; this also bounds the reply before base64).
MAX_FILE_READ = 64 * 1024


def check(guest: str, command: str, arguments: dict[str, Any] | None) -> None:
    """Raise :class:`errors.CommandForbidden` unless the call is read-only.

    :param guest: guest label, for the error message
    :param command: qga command name
    :param arguments: the command's arguments, or None
    """
    if command not in READ_ONLY_COMMANDS:
        raise errors.CommandForbidden(
            guest, command, 'not on the read-only allow-list')
    args = arguments or {}
    if command == 'guest-file-open':
        path = args.get('path')
        mode = args.get('mode', 'r')
        if path not in READABLE_FILES:
            raise errors.CommandForbidden(
                guest, command, 'file %r is not on the allow-list' % (path,))
        if mode != 'r':
            raise errors.CommandForbidden(
                guest, command, 'mode %r is not read-only' % (mode,))
    elif command == 'guest-get-statvfs':
        path = args.get('path')
        if (set(args) != {'path'} or not isinstance(path, str)
                or not path.startswith('/') or '\0' in path
                or len(path.encode('utf-8', 'surrogatepass')) > MAX_PATH):
            raise errors.CommandForbidden(
                guest, command, 'arguments %r are not one absolute path'
                % (args,))
    elif command == 'guest-file-read':
        count = args.get('count', 4096)
        if (isinstance(count, bool) or not isinstance(count, int)
                or not 0 < count <= MAX_FILE_READ):
            raise errors.CommandForbidden(
                guest, command, 'count %r out of bounds' % (count,))
