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

"""Tests of the socket directory checks (the permission boundary)."""

from __future__ import annotations

import grp
import os

import pytest

from nova_qga import socket_dir as sd


def _group_name(gid):
    return grp.getgrgid(gid).gr_name


def test_closed_directory_passes(socket_dir):
    sd.check_socket_dir(socket_dir)
    sd.check_socket_dir(socket_dir,
                        _group_name(os.stat(socket_dir).st_gid))


def test_missing_directory(tmp_path):
    with pytest.raises(sd.SocketDirError, match='does not exist'):
        sd.check_socket_dir(str(tmp_path / 'nope'))


def test_file_is_not_a_directory(tmp_path):
    path = tmp_path / 'file'
    path.write_text('')
    os.chmod(path, 0o600)
    with pytest.raises(sd.SocketDirError, match='not a directory'):
        sd.check_socket_dir(str(path))


@pytest.mark.parametrize('mode', [0o2771, 0o774, 0o777, 0o1772])
def test_any_access_for_others_is_refused(socket_dir, mode):
    os.chmod(socket_dir, mode)
    with pytest.raises(sd.SocketDirError, match='open to other users'):
        sd.check_socket_dir(socket_dir)


def test_wrong_group_is_refused(socket_dir):
    gid = os.stat(socket_dir).st_gid
    other = next(g for g in grp.getgrall() if g.gr_gid != gid)
    with pytest.raises(sd.SocketDirError, match='socket_group'):
        sd.check_socket_dir(socket_dir, other.gr_name)


def test_unknown_group_is_refused(socket_dir):
    with pytest.raises(sd.SocketDirError, match='not a group'):
        sd.check_socket_dir(socket_dir, 'no-such-group-qga')


def test_socket_path():
    assert (sd.socket_path('/run/qga', 'ab-cd') == '/run/qga/ab-cd.sock')


def test_socket_path_too_long_for_sun_path():
    long_dir = '/' + 'd' * 70
    with pytest.raises(sd.SocketDirError, match='longer than 107'):
        sd.socket_path(long_dir, '6f1a6a3e-6ab8-4e36-9d43-d3a5a3f6e0b1')
