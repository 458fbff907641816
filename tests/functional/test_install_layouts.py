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

"""The compute driver loads in every layout Nova is deployed in.

Each test installs Nova and our wheel into a fresh environment the way that
layout does it (``tests/fixtures/install_envs.py``) and runs, as a process
of that environment's interpreter, what ``nova-compute`` does: import
``nova.cmd.compute`` and load ``compute_driver =
qga_libvirt.QgaLibvirtDriver`` through Nova's own
``nova.virt.driver.load_compute_driver`` (``importutils.import_object`` of
``'nova.virt.' + value``).  The driver's ``__init__`` is Nova's libvirt
driver's, which connects to nothing until ``init_host``.

Layouts:

* ``wheel``: Nova's wheel and ours in one venv (pip, kolla, OSA).
* ``editable``: ``pip install -e`` of Nova's sdist (devstack's
  ``setup_develop``, a developer's checkout), setuptools' import hook.
* ``split``: Nova in one site directory, us in another (distro packages
  plus ``pip install --target``/a second site directory).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.fixtures import install_envs

pytestmark = pytest.mark.functional


@pytest.fixture(scope='session')
def our_wheel() -> str:
    """Our wheel, built from this tree once per session."""
    return install_envs.session_wheel()


def _load_driver(env: install_envs.Env, tmp_path,
                 driver: str = 'qga_libvirt.QgaLibvirtDriver') -> dict:
    result = install_envs.load_compute_driver(env.python, str(tmp_path),
                                              driver)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.splitlines()[-1])


def _check(loaded: dict, env: install_envs.Env, nova_dir: str) -> None:
    assert loaded['class'] == 'nova_qga.driver.QgaLibvirtDriver'
    assert loaded['is_libvirt_driver'] is True
    assert loaded['hooks'] == ['agent_channel', 'monitor_channel']
    # Nova and our package each from where this layout put them.
    assert loaded['nova'].startswith(nova_dir + os.sep), loaded
    assert loaded['nova_qga'].startswith(env.ours + os.sep), loaded


def test_nova_and_us_from_wheels_in_one_venv(our_wheel, tmp_path):
    env = install_envs.nova_wheel_env(our_wheel)
    _check(_load_driver(env, tmp_path), env, env.site_packages)
    # Nothing of ours inside Nova's package.
    assert not os.path.exists(os.path.join(env.site_packages, 'nova', 'virt',
                                           'qga_libvirt'))


def test_editable_nova(our_wheel, tmp_path):
    env = install_envs.nova_editable_env(our_wheel)
    (source,) = [d for d in os.listdir(os.path.join(env.prefix, 'src'))]
    tree = os.path.join(env.prefix, 'src', source)
    # Nova really is installed through setuptools' import hook.
    assert any(name.startswith('__editable___nova_')
               for name in os.listdir(env.site_packages))
    _check(_load_driver(env, tmp_path), env, tree)


def test_nova_and_us_in_different_site_directories(our_wheel, tmp_path):
    env = install_envs.nova_split_env(our_wheel)
    assert env.ours != env.site_packages
    _check(_load_driver(env, tmp_path), env, env.site_packages)
