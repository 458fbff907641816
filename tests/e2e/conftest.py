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

"""Fixtures of the e2e suite: guest image, private libvirtd, VMs, timings.

Session scope: the guest image (built once, cached on disk across runs),
one private libvirtd for every e2e module, and one shared libvirt
connection provider for the transports.  Module scope: a
:class:`~tests.fixtures.vm.VmLauncher`, whose domains are all destroyed and
undefined when the module ends, pass or fail.

Timings that tests put into ``e2e_timings`` are printed at the end of the
run ("e2e timings" section), whatever the capture settings.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
import shutil
import tempfile
from typing import Any

import pytest

from ceilometer_qga import libvirt_host
from tests.fixtures import libvirt_env as env_fixtures
from tests.fixtures import vm as vm_fixtures

_TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the measured timings of this run."""
    if not _TIMINGS:
        return
    terminalreporter.section('e2e timings')
    for name, value in _TIMINGS.items():
        terminalreporter.write_line('%-32s %10.3f' % (name, value))


@pytest.fixture(scope='module')
def socket_dir() -> Iterator[str]:
    """``[qga] socket_dir`` of the module's VMs: short (unix socket paths
    are limited to 107 bytes), mode 0770 as the monitor hook requires.
    """
    path = tempfile.mkdtemp(prefix='qgae', dir='/tmp')
    os.chmod(path, 0o770)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='session')
def e2e_timings() -> dict[str, float]:
    """name -> value; printed at the end of the run."""
    return _TIMINGS


@pytest.fixture(scope='session')
def guest_image() -> Any:
    """The built guest image (skips the suite only without any accelerator)."""
    reason = env_fixtures.skip_reason()
    if reason:
        pytest.skip(reason)
    return env_fixtures.build_image(_TIMINGS)


@pytest.fixture(scope='session')
def libvirtd(guest_image: Any) -> Iterator[Any]:
    """A private libvirtd + virtlogd, stopped by pid at the end of the run."""
    with env_fixtures.private_libvirtd(_TIMINGS) as env:
        yield env


@pytest.fixture(scope='session')
def libvirt_provider(libvirtd: Any) -> Iterator[libvirt_host.ConnectionProvider]:
    """The read-write connection + thread pool the libvirt transports share."""
    provider = libvirt_host.ConnectionProvider(libvirtd.uri, 4)
    yield provider
    provider.close()


@pytest.fixture(scope='module')
def vm_launcher(libvirtd: Any, guest_image: Any,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[vm_fixtures.VmLauncher]:
    """Starts VMs; destroys and undefines all of them after the module."""
    launcher = vm_fixtures.VmLauncher(libvirtd, guest_image,
                                      str(tmp_path_factory.mktemp('vms')))
    try:
        yield launcher
    finally:
        launcher.cleanup()
