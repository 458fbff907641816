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

"""etc/qga-polling.conf.sample is what oslo-config-generator makes now.

The generator runs in a child process, as ``make genconfig`` runs it
(``python -m oslo_config.generator`` with the generator configuration of
etc/oslo-config-generator/), on this source tree: listing the
``oslo.service.service`` options imports oslo.service's eventlet backend,
which must not happen inside the test process.  The Nova ``[qga]`` sample
has its own test (tests/unit/nova_qga/test_conf.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from ceilometer_qga import conf as qga_conf

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
GENERATOR_CONF = os.path.join(ROOT, 'etc', 'oslo-config-generator',
                              'qga-polling.conf')
SAMPLE = os.path.join(ROOT, 'etc', 'qga-polling.conf.sample')
#: "#name = default" (or "#name =" for an empty default)
_OPTION_LINE = re.compile(r'^#([A-Za-z_][A-Za-z0-9_]*) =( |$)')
STALE = ('etc/qga-polling.conf.sample is stale: regenerate it with '
         '"make genconfig" (or "tox -e genconfig")')


def _generate(output: str, prefix: list[str] | None = None) -> None:
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        (prefix or []) + [sys.executable, '-m', 'oslo_config.generator',
                          '--config-file', GENERATOR_CONF,
                          '--output-file', output],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _read(path: str) -> str:
    with open(path) as src:
        return src.read()


def test_committed_sample_is_current(tmp_path):
    out = str(tmp_path / 'qga-polling.conf.sample')
    _generate(out)
    assert _read(out) == _read(SAMPLE), STALE


def test_sample_does_not_depend_on_the_host_name(tmp_path):
    """Generated under another host name (a UTS namespace): same file.

    ``[DEFAULT] host`` defaults to the host name; its sample_default keeps
    the machine out of the sample.
    """
    unshare = shutil.which('unshare')
    hostname = shutil.which('hostname')
    if os.geteuid() != 0 or not unshare or not hostname or subprocess.run(
            [unshare, '--uts', 'true'], capture_output=True,
            timeout=30).returncode != 0:
        pytest.skip('needs unshare(1) and the right to make a UTS '
                    'namespace, to change the host name')
    out = str(tmp_path / 'qga-polling.conf.sample')
    _generate(out, [unshare, '--uts', 'sh', '-c',
                    '"$0" qga-sample-check.example && exec "$@"', hostname])
    assert _read(out) == _read(SAMPLE)


def test_sample_documents_every_poller_option():
    """Each option of ceilometer_qga.conf appears, commented, in its group."""
    documented = documented_options(_read(SAMPLE))
    for group, opts in qga_conf.list_opts():
        for opt in opts:
            assert opt.dest in documented.get(group, set()), (group, opt.dest)


def documented_options(text: str) -> dict[str, set[str]]:
    """Group -> option names of the "#name = value" lines of a sample."""
    options: dict[str, set[str]] = {}
    group = 'DEFAULT'
    for line in text.splitlines():
        if line.startswith('[') and line.endswith(']'):
            group = line[1:-1]
        else:
            match = _OPTION_LINE.match(line)
            if match:
                options.setdefault(group, set()).add(match.group(1))
    return options
