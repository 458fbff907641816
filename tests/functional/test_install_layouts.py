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
import subprocess

import pytest

from tests.fixtures import install_envs

pytestmark = pytest.mark.functional

PROBE = r'''
import json
import sys

import nova.cmd.compute  # noqa: F401  (what nova-compute imports first)
import nova.conf
from nova.virt import driver
from nova.virt import fake
from nova.virt.libvirt import driver as libvirt_driver

nova.conf.CONF([], project='nova', default_config_files=[])
drv = driver.load_compute_driver(fake.FakeVirtAPI(), sys.argv[1])
import nova, nova_qga, nova.virt.libvirt  # noqa: E401
print(json.dumps({
    'class': '%s.%s' % (type(drv).__module__, type(drv).__qualname__),
    'is_libvirt_driver': isinstance(drv, libvirt_driver.LibvirtDriver),
    'hooks': drv._domain_hooks.names,
    'nova': nova.__file__,
    'nova_qga': nova_qga.__file__,
}))
'''


@pytest.fixture(scope='session')
def our_wheel(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Our wheel, built from this tree once per session."""
    return install_envs.build_wheel(str(tmp_path_factory.mktemp('wheel')))


def _load_driver(env: install_envs.Env, tmp_path,
                 driver: str = 'qga_libvirt.QgaLibvirtDriver') -> dict:
    """Run the probe in ``env``: isolated (-I), from an empty directory."""
    environ = {'PATH': os.environ['PATH'], 'HOME': str(tmp_path),
               'LANG': 'C.UTF-8'}
    result = subprocess.run([env.python, '-I', '-c', PROBE, driver],
                            cwd=str(tmp_path), env=environ,
                            capture_output=True, text=True, timeout=300)
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


def test_old_compute_driver_value_and_a_wrong_one(our_wheel, tmp_path):
    """The name stays the documented one; a typo fails as Nova reports it."""
    env = install_envs.nova_wheel_env(our_wheel)
    environ = {'PATH': os.environ['PATH'], 'HOME': str(tmp_path)}
    result = subprocess.run(
        [env.python, '-I', '-c', PROBE, 'qga_libvirt.NoSuchDriver'],
        cwd=str(tmp_path), env=environ, capture_output=True, text=True,
        timeout=300)
    assert result.returncode != 0
    assert 'NoSuchDriver' in result.stderr
