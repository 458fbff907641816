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

"""Tests of the injected-file filter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nova_qga import conf as qga_conf
from nova_qga import injected_files

DEFAULTS = next(o.default for o in qga_conf.qga_opts
                if o.name == 'strip_injected_files')


def test_defaults_drop_the_old_monitoring_files():
    files = [('/etc/vm_monitor/monitor.py', b'#!/usr/bin/python'),
             ('/etc/hosts', b'127.0.0.1 localhost'),
             ('/etc/vm_monitor/conf/agent.ini', b'[a]'),
             ('/etc/cron.d/inject_cron_job', b'* * * * * root x'),
             ('/etc/cron.d/other_job', b'@daily root y')]
    kept, dropped = injected_files.split_injected_files(files, DEFAULTS)
    assert kept == [('/etc/hosts', b'127.0.0.1 localhost'),
                    ('/etc/cron.d/other_job', b'@daily root y')]
    assert dropped == ['/etc/vm_monitor/monitor.py',
                       '/etc/vm_monitor/conf/agent.ini',
                       '/etc/cron.d/inject_cron_job']


def test_path_tricks_do_not_escape_the_patterns():
    files = [('etc/vm_monitor/a', b''), ('//etc/vm_monitor/b', b''),
             ('/etc/./vm_monitor/c', b''), ('/etc/x/../cron.d/inject_cron_job',
                                            b''),
             ('/etc/vm_monitor_other', b'')]
    kept, dropped = injected_files.split_injected_files(files, DEFAULTS)
    assert [p for p, _c in kept] == ['/etc/vm_monitor_other']
    assert len(dropped) == 4


def test_no_patterns_keep_everything():
    files = [('/etc/vm_monitor/a', b'')]
    assert injected_files.split_injected_files(files, []) == (files, [])


paths = st.lists(st.tuples(
    st.text(alphabet='/abcetvm_onir.', min_size=1, max_size=30),
    st.binary(max_size=8)), max_size=12)


def _is_legacy(normal_path):
    return (normal_path.startswith('/etc/vm_monitor/') or
            normal_path == '/etc/cron.d/inject_cron_job')


@given(paths)
def test_split_is_an_ordered_partition(files):
    kept, dropped = injected_files.split_injected_files(files, DEFAULTS)
    dropped_set = set(dropped)
    assert kept == [f for f in files if f[0] not in dropped_set]
    assert dropped == [p for p, _c in files if p in dropped_set]
    for path in dropped:
        assert _is_legacy(injected_files.normalise_path(path))
    for path, _contents in kept:
        assert not _is_legacy(injected_files.normalise_path(path))
