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

"""A short run of ``make soak`` (``tests/bench/soak.py``) as a process.

Everything is real (see the tool's docstring): the ``qga-polling`` service,
qemu-ga stand-ins and hostile fake agents, RabbitMQ through the cuttable
proxy, cut twice.  20 seconds instead of the full 10 minutes, which
``make soak`` runs; the tool exits 1 if a sample was lost or duplicated or
RSS or fds grew.
"""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_soak_smoke(rabbit_url):
    env = dict(os.environ, SOAK_SECONDS='20', SOAK_CUT_SECONDS='3',
               SOAK_REAL='2')
    proc = subprocess.run([sys.executable, '-m', 'tests.bench.soak'],
                          capture_output=True, text=True, timeout=180,
                          env=env, cwd=ROOT)
    # "name  value" lines, the name in the first 26 columns
    report = {line[:26].strip(): line[26:].strip()
              for line in proc.stdout.splitlines()
              if not line.startswith('soak:')}
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert 'soak: PASS' in proc.stdout
    assert int(report['samples produced']) > 100
    assert report['lost'] == '0'
    assert report['duplicated'] == '0'
    assert report['tracebacks in log'] == '0'
    assert int(report['sweeps done']) >= 15
