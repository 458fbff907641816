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

"""The bench baselines build the samples ``qga-polling`` builds.

Real parts: the fake fleet process (replies recorded from qemu-ga 7.2),
the installed ``qga-polling --once`` console script, and
``tests/bench/bench_baselines.py`` in both modes, as processes on the same
configuration file.  A comparison is only fair if the work is the same.
"""

import collections
import json
import os
import subprocess
import sys

import pytest

from tests.bench import bench
from tests.bench import fake_fleet

pytestmark = pytest.mark.functional

#: differ by nature: ids, times, latency, the wording of an error
VOLATILE = {'message_id', 'message_signature', 'timestamp',
            'monotonic_time'}


def comparable(path):
    out = collections.Counter()
    with open(path) as f:
        for line in f:
            msg = json.loads(line)
            md = dict(msg['resource_metadata'])
            md.pop('agent_error', None)
            if msg['counter_name'] == 'guest.agent.latency':
                msg['counter_volume'] = None
            key = {k: v for k, v in msg.items() if k not in VOLATILE}
            key['resource_metadata'] = md
            out[json.dumps(key, sort_keys=True)] += 1
    return out


def test_baselines_publish_the_same_samples_as_the_service(short_tmpdir):
    fleet_dir = os.path.join(short_tmpdir, 'f')
    os.makedirs(fleet_dir)
    with fake_fleet.FakeFleet(fleet_dir, 3, silent_every=3) as fleet:
        config = os.path.join(short_tmpdir, 'c.conf')
        ours = os.path.join(short_tmpdir, 'ours.jsonl')
        bench.write_config(config, fleet.sockets, 60, ours)
        subprocess.run([bench.QGA_POLLING, '--config-file', config,
                        '--once'], check=True, capture_output=True,
                       timeout=60)
        outputs = {}
        for mode in ('sequential', 'threads'):
            outputs[mode] = os.path.join(short_tmpdir, mode + '.jsonl')
            proc = subprocess.run(
                [sys.executable, '-m', bench.BASELINES, '--mode', mode,
                 '--config-file', config, '--output', outputs[mode],
                 '--sweeps', '1'], check=True, capture_output=True,
                text=True, timeout=60, cwd=bench.processes.ROOT)
            result = json.loads(proc.stdout)
            assert result['guests'] == 3 and len(result['sweeps']) == 1
            assert result['sweeps'][0]['up'] == 2
    expected = comparable(ours)
    assert sum(expected.values()) > 2 * 20 + 1
    for mode, path in outputs.items():
        assert comparable(path) == expected, mode
