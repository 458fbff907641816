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

"""The version matrix, for real: which meters each qemu-ga version gives.

Real parts: Debian 12's qemu-ga 7.2 and Debian bullseye's qemu-ga 5.2
(fetched by ``tools/fetch_qemu_ga.sh``, run from its cache with
``LD_LIBRARY_PATH``), both as stand-in guests on unix sockets, polled by
the installed ``qga-polling --once`` console script into a ``file://``
publisher.  5.2 has no ``guest-get-cpustats``, ``guest-get-diskstats`` or
``guest-get-load``: its cpu, disk and load meters come from the /proc
fallbacks, and it must give every meter 7.2 gives.

Versions that cannot run here (2.12, 4.2, 8.2, 9.2, 10.0, virtio-win) are
recorded agents (``tests/fixtures/agents/*.json``, each with its
``source``), replayed by the fake agent (``tests/fixtures/agents/fake_agent.py
--recording``) to the same ``qga-polling --once``: the real engine decides
native or fallback from what each one offers.  The table of
``doc/source/admin/guest-versions.rst`` is checked against what every
version really gave.
"""

import collections
import json
import os
import re
import subprocess
import sys

import pytest

from tests.fixtures.agents import qga_protocol
from tests.fixtures.agents.qga_standin import StandinGuest

pytestmark = pytest.mark.functional

BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
AGENTS = os.path.join(ROOT, 'tests', 'fixtures', 'agents')
UUID_REC = '99999999-9999-4999-8999-999999999999'
#: the table's column of each recording
RECORDINGS = {
    '2.5': 'qemu-ga-2.5.json',
    '2.12': 'qemu-ga-2.12.json',
    '2.12+statvfs': 'qemu-ga-2.12-statvfs.json',
    '4.2': 'qemu-ga-4.2.json',
    '8.2': 'qemu-ga-8.2.json',
    '9.2': 'qemu-ga-9.2.json',
    '10.0': 'qemu-ga-10.0.json',
    'virtio-win': 'virtio-win.json',
}
#: the table's rows: meter name prefix
GROUPS = ('agent', 'filesystem', 'memory', 'cpu', 'load', 'disk',
          'network', 'users', 'vcpus')
UUID_72 = '72727272-7272-4272-8272-727272727272'
UUID_52 = '52525252-5252-4252-8252-525252525252'

#: meters 5.2 gets from /proc where 7.2 has a native command
FALLBACK_ON_52_ONLY = {
    'guest.cpu.time', 'guest.disk.read.bytes', 'guest.disk.write.bytes',
    'guest.disk.read.requests', 'guest.disk.write.requests'}


def _poll_once(workdir, guests):
    out = os.path.join(workdir, 'samples.jsonl')
    conf = os.path.join(workdir, 'qga-polling.conf')
    with open(conf, 'w') as f:
        f.write(f"""[DEFAULT]
log_file = {workdir}/qga-polling.log
[qga_polling]
discovery = static
transport = socket
publishers = file://{out}
command_timeout = 2
guest_budget = 8
[static_discovery]
guests = {','.join('%s=%s' % g for g in guests)}
""")
    proc = subprocess.run([BIN, '--config-file', conf, '--once'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        return [json.loads(line) for line in f if line.strip()]


def matrix_column(samples, instance_id):
    """{group: 'native'|'fallback'|'-'} and the meter count of one guest.

    A group whose meters came from both sources, or only some of whose
    meters came, is shown as such, so that the comparison fails.
    """
    sources = collections.defaultdict(set)
    meters = set()
    for s in samples:
        if s['resource_metadata']['instance_id'] != instance_id:
            continue
        group = s['counter_name'].split('.')[1]
        meters.add(s['counter_name'])
        sources[group].add(s['resource_metadata'].get('collected_by')
                           or 'native')
    column = {g: '/'.join(sorted(sources[g])) if sources[g] else '-'
              for g in GROUPS}
    return column, len(meters)


def doc_matrix():
    """The version table of the guide: {version: ({group: cell}, meters)}."""
    with open(os.path.join(ROOT, 'doc', 'source', 'admin',
                           'guest-versions.rst')) as f:
        text = f.read()
    table = text.split('.. version-matrix-start')[1].split(
        '.. version-matrix-end')[0]
    rows = [line.split() for line in table.splitlines()
            if line.strip() and not set(line.strip()) <= {'=', ' '}]
    header = rows[0][1:]
    cells = {row[0]: row[1:] for row in rows[1:]}
    out = {}
    for i, version in enumerate(header):
        column = {g: cells[g][i] for g in GROUPS}
        out[version] = (column, int(cells['meters'][i]))
    return out


def test_qemu_ga_52_gives_every_meter_72_gives(short_tmpdir, qemu_ga_52):
    new = StandinGuest('ga72', short_tmpdir).start()
    old = StandinGuest('ga52', short_tmpdir, qemu_ga=qemu_ga_52).start()
    try:
        samples = _poll_once(short_tmpdir, [(UUID_72, new.socket),
                                            (UUID_52, old.socket)])
    finally:
        old.stop()
        new.stop()
    meters = collections.defaultdict(dict)
    versions = {}
    for s in samples:
        md = s['resource_metadata']
        meters[md['instance_id']][s['counter_name']] = md.get('collected_by')
        if s['counter_name'] == 'guest.agent.up':
            assert s['counter_volume'] == 1, md
            versions[md['instance_id']] = md['agent_version']
    assert versions[UUID_72].startswith('7.2')
    assert versions[UUID_52] == '5.2.0'
    assert set(meters[UUID_52]) == set(meters[UUID_72])
    # Every meter of the catalogue but guest.load (no command before 10.0)
    # and those that need the guest to have a user logged in.
    assert len(meters[UUID_72]) >= 24, sorted(meters[UUID_72])
    for name in FALLBACK_ON_52_ONLY:
        assert meters[UUID_72][name] == 'native', name
        assert meters[UUID_52][name] == 'fallback', name
    for name in ('guest.filesystem.used', 'guest.network.incoming.bytes',
                 'guest.vcpus.online'):
        assert meters[UUID_52][name] == 'native', name
    for name in ('guest.memory.used', 'guest.load.1'):
        assert meters[UUID_52][name] == meters[UUID_72][name] == 'fallback'
    # Same host behind both agents: the same disks, filesystems and
    # interfaces, with the same resource ids.
    ids = collections.defaultdict(set)
    for s in samples:
        uuid = s['resource_metadata']['instance_id']
        ids[uuid].add(s['resource_id'][len(uuid):])
    assert ids[UUID_52] == ids[UUID_72]
    documented = doc_matrix()
    for version, uuid in (('5.2', UUID_52), ('7.2', UUID_72)):
        assert matrix_column(samples, uuid) == documented[version], version


@pytest.mark.parametrize('version', sorted(RECORDINGS))
def test_recorded_agent_gives_what_the_guide_says(
        short_tmpdir, fake_agent, version):
    agent = fake_agent('ok', name='rec', verbose=True,
                       recording=os.path.join(AGENTS, RECORDINGS[version]))
    samples = _poll_once(short_tmpdir, [(UUID_REC, agent.socket)])
    assert matrix_column(samples, UUID_REC) == doc_matrix()[version]
    requests = re.findall(r'request (\S+) (.*)', agent.log_text())
    opened = [json.loads(args)['path'] for command, args in requests
              if command == 'guest-file-open']
    if version == 'virtio-win':
        # No /proc on Windows: not a single futile guest-file-open.
        assert opened == []
    else:
        assert opened and all(p.startswith('/proc/') for p in opened)
    statvfs = [json.loads(args)['path'] for command, args in requests
               if command == 'guest-get-statvfs']
    assert statvfs == (['/'] if version == '2.12+statvfs' else [])
    # Each recording answered in its own version's framing (the fake's
    # framing_of): only agents that echo ids (4.0 on) are sent commands
    # with ids.
    with_id = {command: flag == 'True' for command, flag in re.findall(
        r'request-id (\S+) (True|False)', agent.log_text())}
    with open(os.path.join(AGENTS, RECORDINGS[version])) as f:
        echoes = qga_protocol.framing_of(json.load(f)['version']) == 'echo-id'
    assert with_id['guest-ping'] is echoes, version
    assert with_id['guest-sync'] is True  # the framing probe


@pytest.mark.parametrize('agent_version', ['1.5.0', '2.5.0', '2.8.0',
                                           '2.11.0', '2.12.0', '3.0.0',
                                           '3.1.0', '4.0.0', '7.2.0'])
def test_recorded_72_answers_in_every_framing_give_every_meter(
        short_tmpdir, fake_agent, agent_version):
    """Real qemu-ga 7.2 answers (the 8.2 recording: 7.2's command set and
    capture), framed as ``agent_version`` frames them (ids refused up to
    2.11 and in 3.0-3.1, ignored in 2.12, echoed from 4.0): the agent is up
    and gives every meter the guide promises for that command set, in
    every framing.  Before the framing was learnt, every framing but 4.0's
    gave ``agent_state`` timeout and one meter.
    """
    agent = fake_agent('ok', name='framing', agent_version=agent_version,
                       recording=os.path.join(AGENTS, RECORDINGS['8.2']))
    samples = _poll_once(short_tmpdir, [(UUID_REC, agent.socket)])
    [up] = [s for s in samples if s['counter_name'] == 'guest.agent.up']
    assert up['counter_volume'] == 1, up['resource_metadata']
    assert up['resource_metadata']['agent_state'] == 'ok'
    assert up['resource_metadata']['agent_version'] == agent_version
    assert matrix_column(samples, UUID_REC) == doc_matrix()['8.2']


def test_patched_statvfs_gives_the_sizes_a_modern_fsinfo_gives(
        short_tmpdir, fake_agent):
    """2.12 + guest-get-statvfs: same bytes as 7.2's fsinfo for that fs."""
    path = os.path.join(AGENTS, RECORDINGS['2.12+statvfs'])
    agent = fake_agent('ok', name='rec', recording=path)
    samples = _poll_once(short_tmpdir, [(UUID_REC, agent.socket)])
    fs = {s['counter_name']: s for s in samples
          if s['counter_name'].startswith('guest.filesystem.')}
    with open(os.path.join(ROOT, 'tests', 'unit', 'collectors', 'data',
                           'fsinfo.json')) as f:
        [root] = [e for e in json.load(f) if e['mountpoint'] == '/']
    assert fs['guest.filesystem.used']['counter_volume'] == root['used-bytes']
    assert fs['guest.filesystem.total']['counter_volume'] == root[
        'total-bytes']
    md = fs['guest.filesystem.used']['resource_metadata']
    assert (md['mountpoint'], md['collected_by']) == ('/', 'fallback')
    assert fs['guest.filesystem.used']['resource_id'] == UUID_REC + '-_2F'


def test_windows_guest_facts_users_and_filesystems(short_tmpdir, fake_agent):
    """virtio-win replies through the engine, not only the parsers."""
    agent = fake_agent('ok', name='win',
                       recording=os.path.join(AGENTS, RECORDINGS['virtio-win']))
    samples = _poll_once(short_tmpdir, [(UUID_REC, agent.socket)])
    by_name = collections.defaultdict(list)
    for s in samples:
        by_name[s['counter_name']].append(s)
    up = by_name['guest.agent.up'][0]['resource_metadata']
    assert (up['os_id'], up['os_version']) == ('mswindows', '2019')
    assert up['agent_version'] == '108.0.2'
    # C: has sizes; "System Reserved" has none and is skipped quietly; the
    # empty DVD drive has 0 of 0 bytes (no usage percentage for it).
    mounts = {s['resource_metadata']['mountpoint']: s['counter_volume']
              for s in by_name['guest.filesystem.used']}
    assert mounts == {'C:\\': 16180703232, 'D:\\': 0}
    assert [s['resource_metadata']['mountpoint']
            for s in by_name['guest.filesystem.usage']] == ['C:\\']
    [users] = by_name['guest.users']
    assert users['counter_volume'] == 2  # Administrator of two domains
    assert not [n for n in by_name if n.startswith(
        ('guest.memory.', 'guest.cpu.', 'guest.load.', 'guest.disk.'))]


def test_probe_says_how_an_old_agent_is_read(fake_agent):
    """``qga-probe`` on CentOS 7's 2.12: what comes from /proc, what cannot."""
    agent = fake_agent('ok', name='old',
                       recording=os.path.join(AGENTS, RECORDINGS['2.12']))
    probe = os.path.join(os.path.dirname(sys.executable), 'qga-probe')
    proc = subprocess.run([probe, '--socket', agent.socket, '--json',
                           '--pings', '1'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report['agent_version'] == '2.12.0'
    via = {m['meter']: m['via'] for m in report['meters']}
    assert via['guest.disk.read.bytes'] == 'fallback'
    assert via['guest.cpu.time'] == 'fallback'
    assert via['guest.network.incoming.bytes'] == 'native'
    assert report['skipped']['filesystem'] == (
        'guest-get-fsinfo reply lacks the figures (an old agent); '
        'guest-get-statvfs not offered for /proc/mounts')
