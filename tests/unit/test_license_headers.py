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

"""Every non-empty Python file carries the Apache 2.0 header, as in every
OpenStack project (hacking's H102 only checks files that name a copyright).
"""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TREES = ('ceilometer_qga', 'nova_qga', 'tests', 'tools', 'devstack')
TOP = ('setup.py', 'qga_monitor_build.py')
HEADER = '# Licensed under the Apache License, Version 2.0 (the "License"); you may\n'


def python_files():
    """Every Python file but the empty ones (an ``__init__.py`` holding only
    a header would be hacking's H104).
    """
    paths = [os.path.join(ROOT, name) for name in TOP]
    for tree in TREES:
        for top, dirs, files in os.walk(os.path.join(ROOT, tree)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            paths += [os.path.join(top, name) for name in files
                      if name.endswith('.py')]
    return [p for p in paths if os.path.getsize(p) > 0]


@pytest.mark.parametrize('path', sorted(python_files()),
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_apache_header(path):
    with open(path) as f:
        lines = f.read().splitlines(keepends=True)
    if lines[0].startswith('#!'):
        lines = lines[1:]
    assert lines and lines[0] == HEADER, 'no Apache 2.0 header'
