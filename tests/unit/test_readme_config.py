"""The standalone configuration shown in README.rst works as printed.

Operators copy that block into ``/etc/qga-monitor/qga-polling.conf``;
oslo.config has no inline comments (a ``# ...`` after a value is part of
the value), so every value is checked as qga-polling reads it.
"""

from __future__ import annotations

import os
import re

from oslo_config import cfg

from ceilometer_qga import conf as conf_mod
from ceilometer_qga import runner as runner_mod

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_block(marker: str) -> str:
    """The literal block that follows the README line ending in ``marker``."""
    with open(os.path.join(ROOT, 'README.rst')) as f:
        lines = f.read().split('\n')
    start = next(i for i, line in enumerate(lines) if line.endswith(marker)) + 1
    block = []
    for line in lines[start:]:
        if line and not line.startswith('    '):
            break
        block.append(line[4:])
    return '\n'.join(block).strip() + '\n'


def test_standalone_config_reads_as_printed(tmp_path):
    text = readme_block('``/etc/qga-monitor/qga-polling.conf``::')
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
    runner_mod.SweepRunner(conf)
