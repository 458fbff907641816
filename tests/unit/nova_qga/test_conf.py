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

"""Tests of nova_qga.conf and of the committed sample configuration."""

from __future__ import annotations

import os
import subprocess
import sys

from oslo_config import cfg
from oslo_config import generator

from nova_qga import conf as qga_conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
GENERATOR_CONF = os.path.join(ROOT, 'etc', 'oslo-config-generator',
                              'nova-qga.conf')
SAMPLE = os.path.join(ROOT, 'etc', 'nova-qga.conf.sample')


def test_list_opts_has_every_option_in_qga_group():
    ((group, opts),) = qga_conf.list_opts()
    assert group == 'qga'
    assert {o.name for o in opts} == {
        'domain_hooks', 'monitor_channel_name', 'socket_dir', 'socket_group',
        'allow_opt_out', 'strip_injected_files', 'nova_agent_features'}


def test_defaults():
    conf = cfg.ConfigOpts()
    qga_conf.register_opts(conf)
    conf([], default_config_files=[])
    assert conf.qga.domain_hooks == ['agent_channel', 'monitor_channel']
    assert conf.qga.monitor_channel_name == 'org.openstack.monitor.0'
    assert conf.qga.strip_injected_files == ['/etc/vm_monitor/*',
                                             '/etc/cron.d/inject_cron_job']
    assert conf.qga.allow_opt_out is True
    # set_password lets the API change a root password: never by default.
    assert conf.qga.nova_agent_features == ['quiesce']


def test_nova_agent_features_refuses_unknown_names():
    conf = cfg.ConfigOpts()
    qga_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override('nova_agent_features', ['quiesce', 'set_password'],
                      group='qga')
    assert conf.qga.nova_agent_features == ['quiesce', 'set_password']
    conf.set_override('nova_agent_features', [], group='qga')
    assert conf.qga.nova_agent_features == []
    try:
        conf.set_override('nova_agent_features', ['freeze'], group='qga')
        conf.qga.nova_agent_features
    except ValueError as exc:
        assert 'freeze' in str(exc)
    else:
        raise AssertionError('an unknown feature name was accepted')


def test_committed_sample_is_current(tmp_path):
    """Fails when etc/nova-qga.conf.sample is stale: run tox -e genconfig."""
    out = tmp_path / 'nova-qga.conf.sample'
    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(['--config-file', GENERATOR_CONF, '--output-file', str(out)])
    generator.generate(conf)
    with open(SAMPLE) as committed:
        assert out.read_text() == committed.read(), (
            'etc/nova-qga.conf.sample is stale; regenerate it with '
            '"tox -e genconfig"')


def test_conf_imports_without_nova():
    """list_opts works on a host without Nova (e.g. for genconfig)."""
    blocker = (
        'import sys\n'
        'class NoNova:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name == "nova" or name.startswith("nova."):\n'
        '            raise ImportError("nova is not installed here")\n'
        'sys.meta_path.insert(0, NoNova())\n'
        'from nova_qga import conf\n'
        'print(len(conf.list_opts()[0][1]))\n')
    result = subprocess.run([sys.executable, '-c', blocker], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '7'
