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

"""Golden sample set: one ``qga-polling --once`` sweep, compared to a record.

Real parts: the installed ``qga-polling`` console script in its own process,
two real qemu-ga 7.2 stand-in guests (``tests/fixtures/agents/qga_standin.py``), the
fault-injecting fake agent (``tests/fixtures/agents/fake_agent.py``) in its ``ok``,
``wrong-types`` and ``frozen`` modes, a listening socket that never answers
(a VM whose agent is not running) and a socket path nobody listens on, with
the ``file://`` publisher.

The record (``golden/sweep.json``) was taken from the tree before the
architecture refactor of issue 11 (last from d1e1658: every other branch
of the time, without the refactor, run with ``python -m
ceilometer_qga.cmd.polling`` from that tree); the refactor must leave the
sample set as it was.
What is compared: for every sample, its meter name, type, unit, resource id,
user and project, the keys of its metadata and the values of the metadata
that say how it was collected (``agent_state``, ``collected_by``, ...).
Volumes are compared where they are stable: every volume of the fake
agents (fixed replies) and, for the stand-ins, only ``guest.agent.up``: a
stand-in reports the host it runs on (memory size, CPU count, OS, qemu-ga
build), and the record must not depend on the machine.  Message
ids, timestamps, signatures, latencies and error texts (they name random
socket paths) are left out.  The stand-ins' per-item samples (the host's
mounts, disks and interfaces) are folded into one entry per meter, so that
a mount appearing on the host does not change the record.

Record again (only when a change of the sample set is intended)::

    QGA_GOLDEN_RECORD=1 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/functional/test_golden_sweep.py
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from tests.fixtures.agents.qga_standin import StandinFleet

pytestmark = pytest.mark.functional

BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'sweep.json')

STANDINS = ['33333333-3333-4333-8333-%012d' % i for i in (1, 2)]
FAKES = {'ok': '44444444-4444-4444-8444-000000000001',
         'wrong-types': '44444444-4444-4444-8444-000000000002',
         'frozen': '44444444-4444-4444-8444-000000000003'}
HUNG = '55555555-5555-4555-8555-000000000001'
ABSENT = '55555555-5555-4555-8555-000000000002'

#: metadata whose value says how a sample came about (stable by design)
STABLE_METADATA = ('agent_state', 'collected_by', 'instance_id', 'mountpoint',
                   'fs_type', 'disk_name', 'vnic_name', 'cpu', 'agent_version',
                   'os_id', 'os_version', 'os_name', 'host_name')
#: what the record keeps of a stand-in's metadata: the stand-ins are the
#: host itself (its memory, CPUs, OS, hostname, qemu-ga build), and the
#: record holds nothing that belongs to the machine it was taken on
STANDIN_METADATA = ('agent_state', 'collected_by', 'instance_id')
#: stand-in meters whose volume does not depend on the host
STABLE_STANDIN_VOLUMES = ('guest.agent.up',)
#: never compared: they change from run to run whatever the code does
VOLATILE_VOLUMES = ('guest.agent.latency',)


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix='qgag', dir='/tmp')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _conf(workdir, guests, out):
    path = os.path.join(workdir, 'qga-polling.conf')
    with open(path, 'w') as f:
        f.write(f"""[DEFAULT]
log_file = {workdir}/qga-polling.log
[qga_polling]
discovery = static
transport = socket
publishers = file://{out}
command_timeout = 0.5
guest_budget = 3
allow_file_reads = true
[static_discovery]
guests = {','.join('%s=%s' % g for g in guests)}
[publisher]
telemetry_secret = golden
""")
    return path


def _entry(sample, volume, keep=STABLE_METADATA):
    md = sample['resource_metadata']
    entry = {
        'name': sample['counter_name'],
        'type': sample['counter_type'],
        'unit': sample['counter_unit'],
        'resource_id': sample['resource_id'],
        'user_id': sample['user_id'],
        'project_id': sample['project_id'],
        'metadata_keys': sorted(md),
        'metadata': {k: md[k] for k in keep if k in md},
    }
    if volume:
        entry['volume'] = sample['counter_volume']
    return entry


def normalise(samples):
    """The comparable view of one sweep's samples (see the module doc)."""
    fakes = set(FAKES.values()) | {HUNG, ABSENT}
    exact = []
    folded = {}
    for s in samples:
        instance = s['resource_metadata']['instance_id']
        name = s['counter_name']
        if instance in fakes:
            exact.append(_entry(s, name not in VOLATILE_VOLUMES))
            continue
        if s['resource_id'] == instance:
            exact.append(_entry(s, name in STABLE_STANDIN_VOLUMES,
                                STANDIN_METADATA))
            continue
        # A host item (mount, disk, interface): one folded entry per meter.
        key = '%s %s' % (instance, name)
        entry = folded.setdefault(key, {
            'name': name, 'type': s['counter_type'],
            'unit': s['counter_unit'], 'metadata_keys': set(),
            'collected_by': set()})
        entry['metadata_keys'] |= set(s['resource_metadata'])
        entry['collected_by'].add(s['resource_metadata'].get('collected_by'))
    exact.sort(key=lambda e: json.dumps(e, sort_keys=True))
    for entry in folded.values():
        entry['metadata_keys'] = sorted(entry['metadata_keys'])
        entry['collected_by'] = sorted(entry['collected_by'])
    return {'samples': exact,
            'standin_items': {k: folded[k] for k in sorted(folded)}}


def test_one_sweep_gives_the_recorded_sample_set(workdir, fake_agent):
    out = os.path.join(workdir, 'samples.jsonl')
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(os.path.join(workdir, 'hung.sock'))
    hung.listen(4)
    try:
        with StandinFleet(2, workdir=workdir) as fleet:
            guests = [(STANDINS[i], g.socket) for i, g in enumerate(fleet)]
            guests += [(uuid, fake_agent(mode, name=mode).socket)
                       for mode, uuid in FAKES.items()]
            guests += [(HUNG, os.path.join(workdir, 'hung.sock')),
                       (ABSENT, os.path.join(workdir, 'absent.sock'))]
            proc = subprocess.run([BIN, '--config-file', _conf(workdir, guests, out),
                                   '--once'], capture_output=True, text=True, timeout=60)
    finally:
        hung.close()
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        got = normalise([json.loads(line) for line in f if line.strip()])
    if os.environ.get('QGA_GOLDEN_RECORD'):
        with open(GOLDEN, 'w') as f:
            json.dump(got, f, indent=1, sort_keys=True)
            f.write('\n')
    with open(GOLDEN) as f:
        want = json.load(f)
    assert got == want
