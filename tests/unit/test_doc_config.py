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

"""The configuration the operator guide shows is what the code does.

Operators copy the standalone block of ``doc/source/admin/deployment.rst``
into ``/etc/qga-monitor/qga-polling.conf``; oslo.config has no inline
comments (a ``# ...`` after a value is part of the value), so every value
is checked as qga-polling reads it.  The table of what is polled how often
(``doc/source/admin/configuration.rst``) is checked against what the
collectors declare.
"""

from __future__ import annotations

import importlib.metadata
import os
import re

from oslo_config import cfg

from ceilometer_qga import collectors
from ceilometer_qga import conf as conf_mod
from ceilometer_qga import pipeline as pipeline_mod

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN = os.path.join(ROOT, 'doc', 'source', 'admin')


def doc_block(page: str, marker: str) -> str:
    """The literal block that follows the line of ``page`` ending in ``marker``."""
    with open(os.path.join(ADMIN, page)) as f:
        lines = f.read().split('\n')
    start = next(i for i, line in enumerate(lines) if line.endswith(marker)) + 1
    block = []
    for line in lines[start:]:
        if line and not line.startswith('    '):
            break
        block.append(line[4:])
    return '\n'.join(block).strip() + '\n'


def test_standalone_config_reads_as_printed(tmp_path):
    text = doc_block('deployment.rst',
                     '``/etc/qga-monitor/qga-polling.conf``::')
    assert '[qga_polling]' in text
    path = tmp_path / 'qga-polling.conf'
    path.write_text(text)
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf(['--config-file', str(path)], project='qga-monitor',
         default_config_files=[], default_config_dirs=[])
    values = [str(conf[group][name]) for group, name in (
        ('qga_polling', 'discovery'), ('qga_polling', 'transport'),
        ('qga_polling', 'interval'), ('libvirt_discovery', 'uri'))]
    assert values == ['libvirt', 'auto', '60', 'qemu:///system']
    assert conf.qga_polling.publishers == ['notifier://']
    for line in text.splitlines():
        # oslo.config would keep the comment in the value
        assert not re.match(r'^\s*[^#\s].*=.*\s#', line), line
    # the service validates it (no connection is made here)
    pipeline_mod.Pipeline(conf)


def test_what_is_polled_how_often_is_what_the_collectors_declare():
    """The guide's table: every collector, its command, its interval."""
    with open(os.path.join(ADMIN, 'configuration.rst')) as f:
        table = f.read().split('.. collector-intervals-start')[1].split(
            '.. collector-intervals-end')[0]
    rows = {}
    for line in table.strip().splitlines()[3:-1]:
        name, rest = line.split(None, 1)
        described, interval = re.split(r'\s{2,}', rest.strip())
        rows[name] = (described, interval)
    declared = {ep.name: ep.load() for ep in importlib.metadata.entry_points(
        group=collectors.NAMESPACE)}
    assert set(rows) == set(declared)
    for name, collector in declared.items():
        described, interval = rows[name]
        assert interval == ('%g s' % collector.interval if collector.interval
                            else 'every sweep'), name
        if collector.command:
            assert '``%s``' % collector.command in described, name
        if collector.fallback_file:
            assert '``%s``' % collector.fallback_file in described, name
