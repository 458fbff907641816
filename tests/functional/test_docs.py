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

"""The documentation and the release notes build, warnings being errors.

``sphinx-build -W`` runs as ``tox -e docs`` and ``tox -e releasenotes`` run
it, as a process from the test venv, on this source tree: a broken
``:doc:`` link, a missing ``include`` or ``literalinclude``, a namespace of
``show-options`` that lists no options, a malformed table or a note reno
cannot read fails the build.  The README, which PyPI and the code browser
show rather than Sphinx, is checked here for the pages it links to.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SPHINX_BUILD = os.path.join(os.path.dirname(sys.executable), 'sphinx-build')


def _build(source: str, out: str) -> str:
    """Build ``source`` (relative to the top) into ``out``; return its log."""
    # PYTHONPATH: the options of this tree, as test_config_samples does.
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [SPHINX_BUILD, '-W', '--keep-going', '-q', '-b', 'html',
         '-d', os.path.join(out, '.doctrees'), source, out],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_doc_builds_without_warnings(tmp_path):
    out = str(tmp_path / 'html')
    _build('doc/source', out)
    # The configuration reference has every group of both namespaces.
    with open(os.path.join(out, 'configuration', 'qga-polling.html')) as f:
        polling = f.read()
    for group in ('qga_polling', 'static_discovery', 'libvirt_discovery',
                  'prometheus_exporter', 'guest_agent_events',
                  'oslo_messaging_rabbit'):
        assert 'id="%s.' % group in polling, group
    with open(os.path.join(out, 'configuration', 'nova-qga.html')) as f:
        assert 'id="qga.domain_hooks"' in f.read()
    # The pages the README's second half became are in the operator guide.
    for page in ('configuration', 'nova', 'deployment', 'guest-versions',
                 'prometheus', 'alarms', 'security', 'troubleshooting',
                 'performance'):
        assert os.path.exists(os.path.join(out, 'admin', page + '.html'))


def test_release_notes_build_without_warnings(tmp_path):
    out = str(tmp_path / 'html')
    _build('releasenotes/source', out)
    with open(os.path.join(out, 'unreleased.html')) as f:
        text = f.read()
    # reno rendered the notes of releasenotes/notes/ (one is about this tree).
    assert 'doc/source/admin/performance.rst' in text


def test_readme_links_to_pages_that_exist():
    with open(os.path.join(ROOT, 'README.rst')) as f:
        readme = f.read()
    links = re.findall(r'`[^`<]+<([^>]+)>`_', readme)
    assert 'doc/source/architecture.rst' in links
    for link in links:
        assert os.path.isfile(os.path.join(ROOT, link)), link
    # The two commands, as the Makefile has them.
    with open(os.path.join(ROOT, 'Makefile')) as f:
        targets = re.findall(r'^([a-z-]+):', f.read(), re.M)
    for command in re.findall(r'^    make (\S+)', readme, re.M):
        assert command in targets, command
