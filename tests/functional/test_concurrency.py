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

"""Every console script selects oslo.service's threading backend first.

Each case is a fresh interpreter (the backend is per process, fixed on
first use), with the working tree first on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
REPORT = ('import sys; from oslo_service import backend; '
          'print(backend.get_backend_type().value); '
          'print(sorted(m for m in ("nova", "ceilometer") if m in sys.modules))')


def _run(code: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split('\n')


@pytest.mark.parametrize('module', ['ceilometer_qga.cmd.polling', 'ceilometer_qga.cmd.probe'])
def test_console_script_module_selects_threading(module):
    """The module a console script imports leaves the threading backend chosen."""
    out = _run('import %s; %s' % (module, REPORT))
    assert out[0] == 'threading'
    # Nor does it bring Nova or Ceilometer code, whose own switches
    # (nova.monkey_patch) would then have to come first.
    assert out[1] == '[]'


def test_oslo_messaging_after_the_package_keeps_threading():
    """What loading the notifier publisher imports no longer picks eventlet."""
    out = _run('import ceilometer_qga.cmd; import oslo_messaging; '
               'import ceilometer_qga.publishers.notifier; ' + REPORT)
    assert out[0] == 'threading'


def test_already_chosen_backend_is_reported_not_overridden():
    """Imported after oslo.messaging, it says so instead of raising."""
    out = _run('import oslo_messaging; from ceilometer_qga.cmd import concurrency; '
               'print(concurrency.select_threading()); ' + REPORT)
    assert out[:2] == ['False', 'eventlet']
