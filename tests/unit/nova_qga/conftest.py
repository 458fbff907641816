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

"""Fixtures of the nova_qga unit tests."""

from __future__ import annotations

import os
import tempfile

from oslo_config import cfg
import pytest

from nova_qga import conf as qga_conf


@pytest.fixture
def socket_dir():
    """A socket directory that passes the permission check (mode 2770).

    Made directly under /tmp: pytest's tmp_path is too long for a unix
    socket path (sun_path holds 107 bytes) once the uuid is appended.
    """
    with tempfile.TemporaryDirectory(prefix='qga-', dir='/tmp') as path:
        os.chmod(path, 0o2770)
        yield path


@pytest.fixture
def conf(socket_dir):
    """A private ConfigOpts with the [qga] options, socket_dir set."""
    opts = cfg.ConfigOpts()
    qga_conf.register_opts(opts)
    opts([], project='nova', default_config_files=[])
    opts.set_override('socket_dir', socket_dir, group=qga_conf.GROUP)
    return opts
