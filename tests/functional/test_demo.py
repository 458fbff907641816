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

"""``make demo`` end to end: real stand-in agents, the real qga-polling CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.fixtures import processes as procs
from tests.fixtures import rabbit

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WIRE_KEYS = {'source', 'counter_name', 'counter_type', 'counter_unit', 'counter_volume',
             'user_id', 'user_name', 'project_id', 'project_name', 'resource_id',
             'timestamp', 'resource_metadata', 'message_id', 'monotonic_time',
             'message_signature'}


def test_demo_prints_real_samples_and_stops_everything(short_tmpdir, processes,
                                                       rabbit_vhost):
    env = dict(os.environ, PYTHONPATH=ROOT)   # the source tree, not an older install
    outdir = os.path.join(short_tmpdir, 'out')
    # Its own vhost: what the demo publishes is deleted with it.
    url = rabbit.vhost_url(rabbit_vhost)
    proc = processes.start([sys.executable, '-m', 'tools.demo',
                            '--outdir', outdir, '--transport-url', url], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        processes.stop(proc)
    assert proc.returncode == 0, out
    for name, uuid in (('guest1', '11111111-1111-4111-8111-111111111111'),
                       ('guest2', '22222222-2222-4222-8222-222222222222'),
                       ('guest3', '33333333-3333-4333-8333-333333333333')):
        assert re.search(r'^%s  %s$' % (name, uuid), out, re.M), out
    assert re.search(r'^guest\.agent\.up\s+\(instance\)\s+1\s+agent', out, re.M), out
    assert 'Sweep 2: qga-polling --once exited 0' in out
    assert 'Stopped every process the demo started' in out

    with open(os.path.join(outdir, 'samples.jsonl')) as lines:
        samples = [json.loads(line) for line in lines]
    assert samples and all(set(s) >= WIRE_KEYS for s in samples)
    assert {s['resource_metadata'].get('instance_id') for s in samples} >= {
        '11111111-1111-4111-8111-111111111111'}
    assert 'RabbitMQ exchange ceilometer topic notifications.sample' in out
    assert url in out

    pids = [int(p) for p in re.findall(r'^  guest\d\s+\S+\s+pid (\d+)', out, re.M)]
    assert len(pids) == 3
    assert not any(procs.pid_alive(pid) for pid in pids)
