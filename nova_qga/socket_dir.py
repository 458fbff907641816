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

"""The security boundary of the monitor sockets: their directory.

Whoever can connect to a monitor socket can send any command the in-guest
agent accepts, so the directory holding the sockets must be closed to
everyone but the QEMU user and group (libvirt creates each socket for QEMU
and labels it with that user and group; the poller joins the group).
nova-compute only checks the directory and never creates or changes it:
it runs as neither of those users.
"""

from __future__ import annotations

import grp
import os
import stat

# sun_path in struct sockaddr_un is 108 bytes, NUL included.
MAX_SOCKET_PATH = 107


class SocketDirError(Exception):
    """The socket directory is unfit; the message says why."""


def check_socket_dir(path: str, group: str | None = None) -> None:
    """Raise :class:`SocketDirError` unless ``path`` is a safe socket dir.

    Safe means: an existing directory that gives other users no access at
    all and, when ``group`` is given, belongs to that group.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SocketDirError('[qga] socket_dir %s does not exist' % path)
    except OSError as exc:
        raise SocketDirError('[qga] socket_dir %s cannot be inspected: %s'
                             % (path, exc))
    if not stat.S_ISDIR(st.st_mode):
        raise SocketDirError('[qga] socket_dir %s is not a directory' % path)
    if st.st_mode & stat.S_IRWXO:
        raise SocketDirError(
            '[qga] socket_dir %s is open to other users (mode %04o); anyone '
            'on the host could talk to the guest agents' %
            (path, stat.S_IMODE(st.st_mode)))
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise SocketDirError('[qga] socket_group %s is not a group on '
                                 'this host' % group)
        if st.st_gid != gid:
            raise SocketDirError(
                '[qga] socket_dir %s belongs to group id %d, not to '
                '[qga] socket_group %s (%d)' % (path, st.st_gid, group, gid))


def socket_path(socket_dir: str, instance_uuid: str) -> str:
    """The monitor socket of one instance; SocketDirError when too long."""
    path = os.path.join(socket_dir, '%s.sock' % instance_uuid)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise SocketDirError('monitor socket path %s is longer than %d '
                             'bytes; choose a shorter [qga] socket_dir'
                             % (path, MAX_SOCKET_PATH))
    return path
