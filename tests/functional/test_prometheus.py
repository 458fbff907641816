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

"""Prometheus scrapes ``qga-polling``'s exporter: real parts end to end.

Real parts: the installed ``qga-polling`` console script as a service
(``interval = 1``, ``[prometheus_exporter] enabled``) polling two real
qemu-ga 7.2 stand-in guests; Debian's Prometheus 2.42 scraping it every
second with the shipped rules (``etc/prometheus/qga-monitor.rules.yaml``);
``promtool`` running the rules' unit tests.  What is checked is what an
operator asks Prometheus: filesystem usage per mountpoint for each
instance, non-negative ``rate()`` of the counters, the rules loaded and
healthy, every panel query of the shipped Grafana dashboard returning
series for the guests' project, and Aetos (PyPI, ``auth_mode = noauth``)
in front of Prometheus showing the series to the guests' project and to
no other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from tests.fixtures.agents.qga_standin import StandinFleet
from tests.fixtures.gnocchi import free_port
from tests.fixtures import processes as procs
from tests.fixtures.prometheus import aetos_query
from tests.fixtures.prometheus import PROMTOOL
from tests.fixtures.prometheus import start_aetos
from tests.fixtures.prometheus import start_prometheus

pytestmark = [pytest.mark.functional, pytest.mark.timeout(300)]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
RULES = os.path.join(ROOT, 'etc', 'prometheus', 'qga-monitor.rules.yaml')
DASHBOARD = os.path.join(ROOT, 'etc', 'prometheus', 'grafana-dashboard.json')
UUIDS = ['66666666-6666-4666-8666-%012d' % i for i in (1, 2)]
PROJECT = 'prom-project'
#: generous: every wait is for an event, this only bounds a broken run
WAIT = 120


def test_promtool_unit_tests_of_the_shipped_rules():
    proc = subprocess.run([PROMTOOL, 'test', 'rules',
                           'qga-monitor.rules.test.yaml'],
                          cwd=os.path.join(ROOT, 'etc', 'prometheus', 'tests'),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SUCCESS' in proc.stdout


def test_prometheus_answers_per_mountpoint_queries(short_tmpdir, processes):
    port = free_port()
    with StandinFleet(2, workdir=short_tmpdir) as fleet:
        conf = os.path.join(short_tmpdir, 'qga-polling.conf')
        with open(conf, 'w') as f:
            f.write(f"""[DEFAULT]
log_file = {short_tmpdir}/qga-polling.log
[qga_polling]
discovery = static
transport = socket
publishers = file://{short_tmpdir}/samples.jsonl
interval = 1
[static_discovery]
guests = {','.join('%s=%s' % (u, g.socket) for u, g in zip(UUIDS, fleet))}
project_id = {PROJECT}
user_id = prom-user
[prometheus_exporter]
enabled = true
listen_address = 127.0.0.1
port = {port}
""")
        stderr = open(os.path.join(short_tmpdir, 'stderr'), 'wb')
        service = processes.start([BIN, '--config-file', conf],
                                  stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()
        procs.wait_for_port('127.0.0.1', port, timeout=WAIT)
        # The raw exposition, as Prometheus gets it.
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port,
                                    timeout=10) as r:
            text = r.read().decode()
        one = [line for line in text.splitlines()
               if not line.startswith('#') and UUIDS[0] in line]
        print('series of one guest: %d' % len(one))
        assert any('mountpoint="/"' in line for line in one)

        _prom, api = start_prometheus(processes, short_tmpdir,
                                      ['127.0.0.1:%d' % port], [RULES])
        usage = api.wait_for(
            'ceilometer_guest_filesystem_usage',
            lambda r: {s['metric'].get('resource', '')[:36] for s in r}
            >= set(UUIDS), WAIT)
        for uuid in UUIDS:
            mine = [s['metric'] for s in usage
                    if s['metric']['resource'].startswith(uuid)]
            assert {m['mountpoint'] for m in mine} >= {'/'}, mine
            for m in mine:
                assert m['project'] == PROJECT and m['user'] == 'prom-user'
                assert m['resource_name'] and m['fstype'] and m['device']
                assert 0 <= float(next(
                    s['value'][1] for s in usage if s['metric'] == m)) <= 100
        for expr in ('rate(ceilometer_guest_cpu_time_total[30s])',
                     'rate(ceilometer_guest_network_incoming_bytes_total[30s])'):
            rates = api.wait_for(
                expr, lambda r: {s['metric']['resource'][:36] for s in r}
                >= set(UUIDS), WAIT)
            assert all(float(s['value'][1]) >= 0 for s in rates), rates

        groups = api.get('/api/v1/rules')['groups']
        rules = [r for g in groups for r in g['rules']]
        assert {r['name'] for r in rules} == {
            'GuestFilesystemAlmostOutOfSpace', 'GuestAgentDown',
            'GuestFrozenTooLong', 'GuestMemoryAvailableLow'}
        assert all(r['health'] == 'ok' for r in rules), rules

        with open(DASHBOARD) as f:
            panels = json.load(f)['panels']
        for panel in panels:
            expr = panel['targets'][0]['expr'].replace('$project', PROJECT)
            found = api.wait_for(expr, lambda r: len(r) >= len(UUIDS), WAIT)
            assert found, (panel['title'], expr)

        # Aetos, the project-scoping proxy OpenStack puts in front of
        # Prometheus: a user of the guests' project sees their series, a
        # user of another project sees none of them.
        aetos = start_aetos(processes, short_tmpdir,
                            int(api.url.rsplit(':', 1)[1]))
        mine = aetos_query(aetos, 'ceilometer_guest_filesystem_usage',
                           PROJECT)
        assert {s['metric']['resource'][:36] for s in mine} == set(UUIDS)
        assert aetos_query(aetos, 'ceilometer_guest_filesystem_usage',
                           'another-project') == []
        assert service.poll() is None
        processes.stop(service)
    assert 'Traceback' not in open(os.path.join(short_tmpdir, 'stderr')).read()
