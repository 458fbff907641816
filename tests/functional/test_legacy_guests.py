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

"""Old-way guests (no guest-agent channel) beside guests that have one.

A guest created the old way keeps the monitoring injected into it and has
no agent channel: it must raise no ``guest.agent.up=0`` (an alarm on up=0
would fire for every such guest), only one INFO line when first seen and a
count in every sweep's log line.  A guest *with* a channel whose agent does
not answer stays up=0: that is the alarm.

Real parts: the installed ``qga-polling`` console script (``--once``, and
the service for two sweeps), our libvirt discovery reading domains whose
XML and Nova metadata Nova's own code makes (``tests/unit/discovery/
nova_domain.py``), a qemu-ga 7.2 stand-in behind one guest's channels.

Substituted: the hypervisor is libvirt's test driver loaded from a node
file (``test:///PATH``), so that the poller's process sees the same
running domains (no VMs here); with ``transport = libvirt`` its
``qemuAgentCommand`` fails, which is an agent that does not answer.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.fixtures.agents.qga_standin import StandinGuest
from tests.fixtures import nova_domain

pytestmark = pytest.mark.functional

BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
MODERN = '11111111-1111-4111-8111-000000000001'
SILENT = '11111111-1111-4111-8111-000000000002'
STANDARD_ONLY = '11111111-1111-4111-8111-000000000003'
LEGACY = '11111111-1111-4111-8111-000000000004'
LEGACY_2 = '11111111-1111-4111-8111-000000000005'


def _node_file(workdir, agent_socket):
    """A test-driver node file: five running Nova domains."""
    servers = [
        (MODERN, ((nova_domain.MONITOR, agent_socket),
                  (nova_domain.STANDARD, workdir + '/std1.sock'))),
        # a channel, but nothing ever answers on it
        (SILENT, ((nova_domain.MONITOR, workdir + '/nobody.sock'),)),
        (STANDARD_ONLY, ((nova_domain.STANDARD, workdir + '/std3.sock'),)),
        (LEGACY, ()),
        (LEGACY_2, ()),
    ]
    domains = [nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=uuid, domain_name='instance-%s' % uuid[-4:],
        display_name='vm-%s' % uuid[-1], channels=channels))
        for uuid, channels in servers]
    path = os.path.join(workdir, 'node.xml')
    with open(path, 'w') as f:
        f.write('<node>\n%s\n</node>\n' % '\n'.join(domains))
    return path


def _conf(workdir, node, transport, interval=60):
    out = os.path.join(workdir, 'samples.jsonl')
    path = os.path.join(workdir, 'qga-polling.conf')
    with open(path, 'w') as f:
        f.write(f"""[DEFAULT]
log_file = {workdir}/qga-polling.log
[qga_polling]
discovery = libvirt
transport = {transport}
publishers = file://{out}
interval = {interval}
command_timeout = 0.5
guest_budget = 2
[libvirt_discovery]
uri = test://{node}
""")
    return path, out


def _samples(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _log(workdir):
    with open(os.path.join(workdir, 'qga-polling.log')) as f:
        return f.read()


@pytest.fixture
def agent(short_tmpdir):
    guest = StandinGuest('modern', short_tmpdir).start()
    yield guest
    guest.stop()


@pytest.mark.parametrize('transport', ['socket', 'auto', 'libvirt'])
def test_legacy_guests_raise_no_up_0_but_silent_agents_do(
        short_tmpdir, agent, transport):
    node = _node_file(short_tmpdir, agent.socket)
    conf, out = _conf(short_tmpdir, node, transport)
    proc = subprocess.run([BIN, '--config-file', conf, '--once'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    samples = _samples(out)
    by_guest = {}
    for s in samples:
        by_guest.setdefault(s['resource_metadata']['instance_id'], []).append(s)
    # Old-way guests: nothing at all, so no alarm and no empty resources.
    assert LEGACY not in by_guest and LEGACY_2 not in by_guest
    ups = {uuid: [s for s in found if s['counter_name'] == 'guest.agent.up']
           for uuid, found in by_guest.items()}
    # Guests with a channel whose agent does not answer: up=0, the alarm.
    assert ups[SILENT][0]['counter_volume'] == 0
    assert ups[STANDARD_ONLY][0]['counter_volume'] == 0
    expected_modern = 0 if transport == 'libvirt' else 1
    assert ups[MODERN][0]['counter_volume'] == expected_modern
    if expected_modern:
        assert len(by_guest[MODERN]) > 20
    log = _log(short_tmpdir)
    assert re.search(r'Sweep: 5 guests, %d up, \d+ samples in [\d.]+ s, '
                     r'2 legacy \(no agent channel\)$' % expected_modern,
                     log, re.MULTILINE), log
    assert 'One sweep done: 5 guests (2 legacy, without agent channel)' in log
    for uuid in (LEGACY, LEGACY_2):
        assert len(re.findall(r'INFO .*Guest %s: no guest-agent channel' % uuid,
                              log)) == 1, log


def test_service_logs_a_legacy_guest_once_and_counts_it_every_sweep(
        short_tmpdir, agent):
    node = _node_file(short_tmpdir, agent.socket)
    conf, out = _conf(short_tmpdir, node, 'auto', interval=1)
    proc = subprocess.Popen([BIN, '--config-file', conf],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(os.path.join(short_tmpdir, 'qga-polling.log')):
                if _log(short_tmpdir).count('2 legacy') >= 3:
                    break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    log = _log(short_tmpdir)
    assert log.count('2 legacy (no agent channel)') >= 3, log
    for uuid in (LEGACY, LEGACY_2):
        assert log.count('Guest %s: no guest-agent channel' % uuid) == 1, log
    assert not [s for s in _samples(out)
                if s['resource_metadata']['instance_id'] in (LEGACY, LEGACY_2)]
