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

"""Hostile guests against ``qga-polling --once``, as an operator runs it.

Real parts: the installed ``qga-polling`` console script in its own
process, a real qemu-ga 7.2 stand-in guest (``tests/fixtures/agents/qga_standin.py``), and
fault-injecting fake agents (``tests/fixtures/agents/fake_agent.py``) for what a real agent
does only when it is hostile or broken.  The samples go to a file
publisher; each line is read back as strict UTF-8 JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from ceilometer.publisher.utils import verify_signature
import pytest

from ceilometer_qga.collectors import checks
from tests.fixtures.agents.qga_standin import StandinGuest

pytestmark = pytest.mark.functional

BIN = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
SECRET = 'hostile-test-secret'
HEALTHY = '33333333-3333-4333-8333-000000000000'
#: what a healthy qemu-ga 7.2 stand-in yields (test_poller.py NATIVE_72
#: and FALLBACK_72, less what a host stand-in may lack)
HEALTHY_METERS = {'guest.agent.up', 'guest.agent.latency',
                  'guest.filesystem.used', 'guest.cpu.time',
                  'guest.memory.total', 'guest.load.1', 'guest.vcpus.online'}


def uuid_of(index: int) -> str:
    return '33333333-3333-4333-8333-%012d' % index


def write_conf(workdir: str, guests: list[tuple[str, str]], extra: str = '') -> str:
    path = os.path.join(workdir, 'qga-polling.conf')
    with open(path, 'w') as f:
        f.write(f"""[DEFAULT]
log_file = {workdir}/qga-polling.log
[qga_polling]
discovery = static
transport = socket
publishers = file://{workdir}/samples.jsonl
command_timeout = 1
guest_budget = 4
shutdown_timeout = 3
{extra}
[static_discovery]
guests = {','.join('%s=%s' % g for g in guests)}
[publisher]
telemetry_secret = {SECRET}
""")
    return path


def run_once(workdir: str, conf: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, '--config-file', conf, '--once'],
                          capture_output=True, timeout=timeout)


def read_samples(workdir: str) -> list[dict]:
    """The file publisher's lines, decoded as strict UTF-8 JSON."""
    path = os.path.join(workdir, 'samples.jsonl')
    if not os.path.exists(path):
        return []
    with open(path, 'rb') as f:
        return [json.loads(line.decode('utf-8', 'strict'))
                for line in f if line.strip()]


def read_log(workdir: str) -> str:
    with open(os.path.join(workdir, 'qga-polling.log'), encoding='utf-8',
              errors='strict') as f:
        return f.read()


def by_resource(samples: list[dict], instance: str) -> list[dict]:
    return [s for s in samples if s['resource_id'].startswith(instance)]


def has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def test_lone_surrogates_cost_only_their_own_values(fake_agent, short_tmpdir):
    """Issue 9: a host-name "vm\\ud800" made signing raise and the whole
    sweep publish nothing; now the guest's strings are made valid (U+FFFD
    for free text, names dropped) and everyone is published.
    """
    healthy = StandinGuest('healthy', short_tmpdir).start()
    try:
        hostile = fake_agent('surrogates')
        conf = write_conf(short_tmpdir, [(HEALTHY, healthy.socket),
                                         (uuid_of(1), hostile.socket)])
        proc = run_once(short_tmpdir, conf)
    finally:
        healthy.stop()
    assert proc.returncode == 0, proc.stderr.decode(errors='replace')
    samples = read_samples(short_tmpdir)
    assert not has_lone_surrogate(samples)
    for s in samples:
        assert verify_signature(s, SECRET)
    assert HEALTHY_METERS <= {s['counter_name'] for s in by_resource(samples, HEALTHY)}
    mine = by_resource(samples, uuid_of(1))
    [up] = [s for s in mine if s['counter_name'] == 'guest.agent.up']
    assert up['counter_volume'] == 1
    assert up['resource_metadata']['guest_hostname'] == 'fake-guest\ufffd'
    assert up['resource_metadata']['os_id'] == 'debian\ufffd'
    # the filesystem's mountpoint is "/\ud800": a name, so it is dropped
    assert not any(s['counter_name'].startswith('guest.filesystem.') for s in mine)
    # cpustats say type "linux\ud800", which is not linux: dropped too;
    # what does not depend on a string is there (/proc/loadavg, base64)
    assert not any(s['counter_name'] == 'guest.cpu.time' for s in mine)
    assert any(s['counter_name'] == 'guest.load.1' for s in mine)
    assert 'Traceback' not in read_log(short_tmpdir)


#: every fake-agent mode but ``ok``: one hostile guest each
HOSTILE_MODES = ('hang', 'slow', 'garbage', 'huge', 'endless', 'stale',
                 'disconnect', 'wrong-types', 'restart', 'frozen',
                 'unsolicited', 'close', 'surrogates', 'invalid-items')
GUEST_BUDGET = 4.0
#: the sweep: every guest in parallel, each within its budget, plus start-up
#: and the flush of the file publisher
ONCE_BOUND = GUEST_BUDGET + 12.0
#: peak RSS (VmHWM) of the ``--once`` process (measured: 63 MiB; a 20 MB
#: reply, an endless stream and 10,000-item lists must not be held whole)
RSS_BOUND_KIB = 128 * 1024
#: log lines one hostile guest may cost in one sweep
LINES_PER_GUEST = 3


def peak_rss_kib(proc: subprocess.Popen, period: float = 0.02) -> int:
    """The process's peak RSS (VmHWM, KiB), read until it exits.

    Not ``wait4``'s ``ru_maxrss``: Linux keeps that across ``execve``, so a
    child forked from a pytest process that has imported Nova and
    Ceilometer starts with pytest's size (seen: 292 MiB in the full suite,
    143 MiB alone).  VmHWM belongs to the memory map, which ``execve``
    replaces.  Monotonic, so the last reading misses at most the final
    ``period`` of the run.
    """
    peak = 0
    while proc.poll() is None:
        try:
            with open('/proc/%d/status' % proc.pid) as status:
                for line in status:
                    if line.startswith('VmHWM:'):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            break  # exited between poll() and open()
        time.sleep(period)
    proc.wait()
    return peak


def test_one_sweep_among_every_hostile_agent(fake_agent, short_tmpdir):
    """Issue 9, item 2: one real qemu-ga among one fake agent per
    behaviour, in a single ``qga-polling --once`` sweep (a process).
    """
    healthy = StandinGuest('healthy', short_tmpdir).start()
    try:
        guests = [(HEALTHY, healthy.socket)]
        modes = {}
        for index, mode in enumerate(HOSTILE_MODES, start=1):
            agent = fake_agent(mode, name=mode, delay=GUEST_BUDGET + 2, after=3,
                               seed=index)
            guests.append((uuid_of(index), agent.socket))
            modes[uuid_of(index)] = mode
        conf = write_conf(short_tmpdir, guests, extra=(
            'guest_budget = %s\nmax_concurrent_guests = 16\n' % GUEST_BUDGET))
        log = os.path.join(short_tmpdir, 'stderr.log')
        started = time.monotonic()
        with open(log, 'wb') as err:
            proc = subprocess.Popen([BIN, '--config-file', conf, '--once'],
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            peak_kib = peak_rss_kib(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        took = time.monotonic() - started
        with open(log, errors='replace') as err:
            stderr = err.read()
    finally:
        healthy.stop()
    assert proc.returncode == 0, stderr
    assert took < ONCE_BOUND, took
    assert 0 < peak_kib < RSS_BOUND_KIB, peak_kib
    samples = read_samples(short_tmpdir)
    assert not has_lone_surrogate(samples)
    for s in samples:
        assert verify_signature(s, SECRET)
        assert checks.valid_volume(s['counter_volume']), s
        assert len(s['resource_id']) <= 255
        if s['counter_unit'] == '%':
            assert s['counter_volume'] <= 100, s

    healthy_names = {s['counter_name'] for s in by_resource(samples, HEALTHY)}
    assert HEALTHY_METERS <= healthy_names, healthy_names
    states = {}
    for instance, mode in modes.items():
        mine = by_resource(samples, instance)
        ups = [s for s in mine if s['counter_name'] == 'guest.agent.up']
        assert len(ups) == 1, (mode, ups)
        states[mode] = (ups[0]['counter_volume'],
                        ups[0]['resource_metadata']['agent_state'])
    # what each hostile guest must come to (volume of guest.agent.up, state)
    assert states['hang'][0] == 0 and states['slow'][0] == 0
    assert states['frozen'] == (1, 'frozen')
    for mode in ('stale', 'wrong-types', 'restart', 'unsolicited', 'close',
                 'surrogates', 'invalid-items'):
        assert states[mode][0] == 1, (mode, states[mode])
    for mode in ('close', 'unsolicited', 'restart'):
        instance = [i for i, m in modes.items() if m == mode][0]
        names = {s['counter_name'] for s in by_resource(samples, instance)}
        assert 'guest.filesystem.used' in names, (mode, names)
    unsolicited = [i for i, m in modes.items() if m == 'unsolicited'][0]
    [up] = [s for s in by_resource(samples, unsolicited)
            if s['counter_name'] == 'guest.agent.up']
    assert up['resource_metadata']['guest_hostname'] == 'fake-guest'
    assert up['resource_metadata']['os_id'] == 'debian'

    log = read_log(short_tmpdir)
    assert 'Traceback' not in log and 'Traceback' not in stderr
    for instance, mode in modes.items():
        lines = [line for line in log.splitlines() if instance in line]
        assert len(lines) <= LINES_PER_GUEST, (mode, lines)
    print('hostile sweep: %.2f s, peak RSS %d KiB, %d samples, states %s'
          % (took, peak_kib, len(samples), states))
