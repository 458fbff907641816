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

"""The guest side's files (guest/) agree with the poller's allow-list.

``tools/gen_guest_files.py`` derives the monitor agent's allow-list, the
``#cloud-config``, Nova's vendor data file and the diskimage-builder
element's files from ``ceilometer_qga/qga/policy.py`` and ``guest/root``;
these tests fail when any of them is edited by hand or goes stale.
"""

from __future__ import annotations

import json
import os

import yaml

from ceilometer_qga.qga import policy
from tools import gen_guest_files


def test_generated_files_are_current() -> None:
    assert gen_guest_files.stale() == []


def test_allow_list_is_the_policy() -> None:
    path = os.path.join(gen_guest_files.TREE, gen_guest_files.ALLOW_PATH)
    with open(path, encoding='utf-8') as f:
        names = [line.strip() for line in f
                 if line.strip() and not line.startswith('#')]
    assert set(names) == policy.READ_ONLY_COMMANDS
    assert len(names) == len(set(names))


def test_cloud_config_installs_every_file_after_the_user() -> None:
    """bootcmd (the user) runs before write_files (the udev rule naming its
    group) in cloud-init's init stage; every installed file is written with
    the tree's content; no ``packages:`` (it forces an apt-get update).
    """
    with open(os.path.join(gen_guest_files.GUEST, 'cloud-init',
                           'qga-monitor.yaml'), encoding='utf-8') as f:
        text = f.read()
    assert text.startswith('#cloud-config\n')
    config = yaml.safe_load(text)
    assert 'packages' not in config
    assert 'useradd --system' in config['bootcmd'][0][2]
    files = {item['path']: item for item in config['write_files']}
    assert set(files) == {'/' + p for p in gen_guest_files.INSTALLED}
    for path in gen_guest_files.INSTALLED:
        assert files['/' + path]['content'] == gen_guest_files.tree_file(path)
    assert files['/usr/local/libexec/qga-monitor-start']['permissions'] == '0755'
    with open(os.path.join(gen_guest_files.GUEST, 'cloud-init',
                           'vendor_data.json'), encoding='utf-8') as f:
        assert json.load(f) == {'cloud-init': text}


def test_unit_binds_to_the_monitor_port_and_runs_unprivileged() -> None:
    unit = gen_guest_files.tree_file('etc/systemd/system/qga-monitor.service')
    assert 'BindsTo=dev-virtio\\x2dports-org.openstack.monitor.0.device' in unit
    assert 'User=qga-monitor' in unit
    assert 'RuntimeDirectory=qga-monitor' in unit
    assert 'ReadOnlyPaths=/\nReadWritePaths=/run/qga-monitor\n' in unit
    assert '--daemonize' not in unit
    # qemu-ga 5.2 can deadlock in its SIGTERM handler: SIGKILL soon after.
    assert '\nTimeoutStopSec=5\n' in unit
    for sandbox in ('\nProtectSystem=', '\nPrivateTmp=', '\nProtectHome='):
        assert sandbox not in unit
    rule = gen_guest_files.tree_file('etc/udev/rules.d/60-qga-monitor.rules')
    assert 'GROUP="qga-monitor", MODE="0660"' in rule
    assert 'ENV{SYSTEMD_WANTS}+="qga-monitor.service"' in rule
