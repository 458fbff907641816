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

"""Collectors by what changes: the schedule with real agents and processes.

Real parts: the installed ``qga-polling`` console script as a service
process (``interval = 1``, ``file://``), real qemu-ga 7.2 stand-in guests
(``tests/fixtures/agents/qga_standin.py``, restarted by their supervisor when killed), the
fake agent replaying a recorded qemu-ga 10.0 whose fsinfo carries one
invalid filesystem, ``qga-probe`` as a process, and the in-process
:class:`~ceilometer_qga.pipeline.Pipeline` for what needs to look inside a
session.  Nothing is mocked; time is the real clock, with intervals of a
few seconds.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from ceilometer_qga import pipeline as pipeline_mod
from ceilometer_qga import schedule
from tests.fixtures import processes as procs
from tests.fixtures.static_guests import make_conf
from tests.fixtures.static_guests import standin_meters

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BINDIR = os.path.dirname(sys.executable)
POLLING = os.path.join(BINDIR, 'qga-polling')
PROBE = os.path.join(BINDIR, 'qga-probe')
UUID = '66666666-6666-4666-8666-000000000001'
RECORDING = os.path.join(ROOT, 'tests', 'fixtures', 'agents',
                         'qemu-ga-10.0.json')
FILESYSTEM = {'guest.filesystem.used', 'guest.filesystem.total',
              'guest.filesystem.usage'}
VCPUS = {'guest.vcpus.online'}


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# -- the service ---------------------------------------------------------------

def test_service_runs_each_collector_per_its_interval(qga_guest, short_tmpdir):
    """``interval = 1``, ``collector_intervals = filesystem:3``.

    The first sweep has every meter.  Then the filesystem meters come about
    every 3 s (every third sweep: 3 s less the 0.5 s tolerance), vCPUs only
    in the first sweep (300 s declared), everything else in every sweep;
    a sweep never repeats a value it did not read.  Not-due collectors
    log nothing at WARNING (nor anything about them at all).
    """
    out = os.path.join(short_tmpdir, 'samples.jsonl')
    log = os.path.join(short_tmpdir, 'qga-polling.log')
    conf = os.path.join(short_tmpdir, 'qga-polling.conf')
    with open(conf, 'w') as f:
        f.write(f"""[DEFAULT]
log_file = {log}
[qga_polling]
discovery = static
transport = socket
publishers = file://{out}
interval = 1
collector_intervals = filesystem:3
command_timeout = 1
guest_budget = 3
shutdown_timeout = 3
[static_discovery]
guests = {UUID}={qga_guest.socket}
""")
    with open(log + '.stderr', 'w') as stderr:
        proc = subprocess.Popen([POLLING, '--config-file', conf],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            sweeps = (sum(s['counter_name'] == 'guest.agent.up'
                          for s in read_jsonl(out))
                      if os.path.exists(out) else 0)
            if sweeps >= 8:
                break
            assert proc.poll() is None, open(log + '.stderr').read()[-3000:]
            assert time.monotonic() < deadline, open(log).read()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    finally:
        if proc.poll() is None:
            procs.stop_pid(proc.pid, timeout=5, group=True)
            proc.wait(10)
    with open(log, errors='replace') as f:
        text = f.read()
    assert rc == 0, text[-3000:]

    by_sweep = collections.defaultdict(list)
    for s in read_jsonl(out):
        by_sweep[s['timestamp']].append(s)
    groups = sorted(by_sweep.values(), key=lambda g: g[0]['monotonic_time'])
    names = [{s['counter_name'] for s in g} for g in groups]
    every = standin_meters(every_sweep_only=True)
    assert len(groups) >= 8
    assert names[0] >= every | FILESYSTEM | VCPUS, names[0]
    for found in names:
        assert every <= found, every - found
        # only what was read in that sweep: nothing else, never a repeat
        assert found - every in (set(), FILESYSTEM, FILESYSTEM | VCPUS), found
    with_fs = [i for i, found in enumerate(names) if FILESYSTEM <= found]
    assert with_fs[0] == 0 and len(with_fs) >= 3, with_fs
    started = [groups[i][0]['monotonic_time'] for i in with_fs]
    gaps = [b - a for a, b in zip(started, started[1:])]
    assert all(2.4 < gap < 4.6 for gap in gaps), gaps
    assert all(2 <= b - a <= 3 for a, b in zip(with_fs, with_fs[1:])), with_fs
    assert [i for i, found in enumerate(names) if VCPUS <= found] == [0]
    # guest.agent.up says ok whether or not a collector was due
    for group in groups:
        (up,) = [s for s in group if s['counter_name'] == 'guest.agent.up']
        assert up['counter_volume'] == 1
        assert up['resource_metadata']['agent_state'] == 'ok'
    warnings = [line for line in text.splitlines() if ' WARNING ' in line]
    assert warnings == [], warnings
    assert 'not due' not in text


# -- one session ---------------------------------------------------------------

def test_a_reconnect_runs_every_collector_again(qga_guest):
    """The agent restarts (killed; its supervisor starts it again): the
    first sweep after the reconnect reads filesystems and vCPUs again,
    though their 300 s have not passed.
    """
    conf = make_conf([(UUID, qga_guest.socket)], backoff_initial=0.0)

    async def run():
        runner = pipeline_mod.Pipeline(conf)
        try:
            first = await runner.run_once()
            second = await runner.run_once()
            os.kill(qga_guest.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while True:
                again = await runner.run_once()
                if again.reports[0].up or time.monotonic() > deadline:
                    return first, second, again
                await asyncio.sleep(0.05)
        finally:
            await runner.close()
    first, second, again = asyncio.run(run())
    slow = FILESYSTEM | VCPUS
    assert slow <= {s.name for s in first.samples}
    assert not slow & {s.name for s in second.samples}
    [report] = second.reports
    assert report.state == 'ok' and report.error is None
    resting = {o.name: o for o in report.outcomes
               if o.source == schedule.NOT_DUE}
    assert set(resting) == {'filesystem', 'vcpus'}
    assert resting['filesystem'].reason.startswith(
        'not due: every 300 s, due again in ')
    assert resting['filesystem'].error_state is None
    assert again.reports[0].up, again.reports[0].error
    assert slow <= {s.name for s in again.samples}


def test_dropped_values_of_a_resting_collector_are_not_warned_again(
        fake_agent, tmp_path, caplog):
    """A filesystem list with one invalid entry: one WARNING for the
    incident, and none when the collector rests a sweep and then runs
    into the same invalid entry again (nor an INFO saying it ended).
    """
    with open(RECORDING) as f:
        recording = json.load(f)
    recording['replies']['guest-get-fsinfo'].append(
        {'name': 'vdb', 'mountpoint': '/data', 'type': 'ext4',
         'used-bytes': 10 ** 12, 'total-bytes': 1, 'disk': []})
    path = tmp_path / 'qemu-ga-10.0-bad-fs.json'
    path.write_text(json.dumps(recording))
    agent = fake_agent('ok', recording=str(path))
    # tolerance 0.5 s: filesystem is due again 0.5 s after it ran
    conf = make_conf([(UUID, agent.socket)], interval=1,
                     collector_intervals={'filesystem': '1'})
    caplog.set_level(logging.INFO, logger='ceilometer_qga')

    async def run():
        runner = pipeline_mod.Pipeline(conf)
        try:
            first = await runner.run_once()
            resting = await runner.run_once()
            await asyncio.sleep(0.6)
            again = await runner.run_once()
            return first, resting, again
        finally:
            await runner.close()
    first, resting, again = asyncio.run(run())
    fs_items = [{s.resource_metadata.get('mountpoint') for s in r.samples
                 if s.name == 'guest.filesystem.used'}
                for r in (first, resting, again)]
    assert fs_items == [{'/'}, set(), {'/'}]
    lines = [r for r in caplog.records if r.name == 'ceilometer_qga.session'
             and r.levelno >= logging.INFO]
    assert [r.levelname for r in lines] == ['WARNING'], [
        r.getMessage() for r in lines]
    assert '/data' in lines[0].getMessage()


# -- qga-probe -----------------------------------------------------------------

@pytest.mark.parametrize('value', ['filesystem:3600,vcpus:3600',
                                   # not the probe's option: not even read
                                   'filesystem:-1'])
def test_probe_shows_every_collector_whatever_the_intervals(
        qga_guest, short_tmpdir, value):
    """``qga-probe`` runs every collector: it shows what the agent
    answers now; none is listed as skipped.
    """
    conf = os.path.join(short_tmpdir, 'probe.conf')
    with open(conf, 'w') as f:
        f.write('[qga_polling]\ncollector_intervals = %s\n' % value)
    proc = subprocess.run([PROBE, '--config-file', conf, '--socket',
                           qga_guest.socket, '--json', '--pings', '0'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    report = json.loads(proc.stdout)
    found = {m['meter'] for m in report['meters']}
    assert FILESYSTEM | VCPUS <= found, found
    assert report['skipped'] == {}
