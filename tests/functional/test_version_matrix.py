"""The version matrix, for real: qemu-ga 5.2 and 7.2 side by side.

Real parts: Debian 12's qemu-ga 7.2 and Debian bullseye's qemu-ga 5.2
(fetched by ``tools/fetch_qemu_ga.sh``, run from its cache with
``LD_LIBRARY_PATH``), both as stand-in guests on unix sockets, polled by
the installed ``qga-polling --once`` console script into a ``file://``
publisher.  5.2 has no ``guest-get-cpustats``, ``guest-get-diskstats`` or
``guest-get-load``: its cpu, disk and load meters come from the /proc
fallbacks, and it must give every meter 7.2 gives.
"""

import collections
import json
import os
import subprocess
import sys

import pytest

from tools.qga_standin import StandinGuest

pytestmark = pytest.mark.functional

BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
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
