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

"""``make bench`` cannot rot: its harness, tiny, as a process.

Real parts: ``tests/bench/bench.py --smoke`` runs the fake fleet process, the
installed ``qga-polling`` console script as a service (with ``file://``,
then with ``notifier://`` to a vhost of its own on the real RabbitMQ), the
real ``ceilometer-polling`` with our pollsters and then with the floor
pollsters (``tests/bench/floor_pollster.py``), both baseline processes
and one real qemu-ga stand-in (the micro rows).  Nothing here checks a
speed: only that every measurement is there and consistent.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.bench import bench

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def test_smoke_run_prints_the_table_and_writes_json(tmp_path, rabbit_url):
    out = tmp_path / 'bench.json'
    proc = subprocess.run([sys.executable, '-m', 'tests.bench.bench',
                           '--smoke', '--json', str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'table as JSON: %s' % out in proc.stdout
    result = json.loads(out.read_text())
    rows = result['rows']
    assert [r['poller'] for r in rows] == [
        'ours (qga-polling)', 'ours in ceilometer-polling',
        'Ceilometer floor', 'ours, notifier://', 'sequential baseline', 'threads baseline']
    # Our pollsters in the real ceilometer-polling: the same samples per
    # cycle (nothing is published to count bytes: Ceilometer's noop driver).
    plugin = rows.pop(1)
    assert plugin['sweeps'] >= 1 and plugin['cpu_ms_per_guest'] > 0
    assert plugin['up'] == 5 and plugin['samples'] == rows[0]['samples']
    assert plugin['peak_rss'] > 10 * 2 ** 20
    # The floor: as many samples per cycle from pollsters that ask nothing.
    floor = rows.pop(1)
    assert floor['sweeps'] >= 1 and floor['cpu_ms_per_guest'] > 0
    assert floor['samples'] == plugin['samples'] and floor['up'] is None
    assert '= Ceilometer floor' in proc.stdout
    for row in rows:
        assert row['fleet'] in proc.stdout
        assert row['sweeps'] >= 1 and row['wall'] > 0
        assert row['peak_rss'] > 10 * 2 ** 20
        assert row['bytes'] > 0
        assert row['up'] == 5
    # The baselines build our samples: same count on the same fleet.
    assert len({r['samples'] for r in rows}) == 1
    assert rows[0]['samples'] > 5 * 10
    # Counted on the bus: batches of 50 samples, envelopes around them.
    assert rows[1]['notifications'] == -(-rows[1]['samples'] // 50)
    assert rows[1]['bytes'] > rows[0]['bytes']
    # The bus row's split: oslo.messaging's and kombu's JSON of the same
    # sweep, encoded again in the bench process.
    assert rows[1]['bus_json_ms_per_guest'] > 0
    assert 'oslo.messaging and kombu JSON of the same samples' in proc.stdout
    assert {m['measure'] for m in result['micro']} == {
        'guest-ping median (ms)', 'sign one sample (us)',
        'heartbeat CPU per guest (ms), 20 guests'}


def test_top_entries_reads_py_spy_raw_output(tmp_path):
    raw = tmp_path / 'profile.txt'
    raw.write_text('main (a.py:1);sweep (b.py:2);sign (c.py:3) 6\n'
                   'main (a.py:1);sweep (b.py:2) 3\n'
                   'main (a.py:1);idle (d.py:4) 1\n')
    top = bench.top_entries(str(raw), limit=2)
    assert [t['function'] for t in top] == ['sign (c.py:3)',
                                            'sweep (b.py:2)']
    assert top[0]['own_pct'] == 60.0
    assert top[1]['total_pct'] == 90.0


def _row(poller, samples, **extra):
    return dict({'fleet': '1000 fake, 50 silent', 'poller': poller,
                 'samples': samples, 'wall': 1.5, 'cpu_ms_per_guest': 0.9,
                 'peak_rss': 120 * 2 ** 20, 'rss_growth': 2 ** 20,
                 'sweeps': 20}, **extra)


def test_a_sample_shortfall_against_a_baseline_is_flagged():
    # How the cut sweep of issue 10 hid: ours 11,540 samples a sweep, the
    # baselines 24,750 from the same fleet.
    rows = [_row('ours (qga-polling)', 11540),
            _row('sequential baseline', 24750),
            _row('threads baseline', 24750)]
    warnings = bench.shortfalls(rows)
    assert len(warnings) == 2 and '11540' in warnings[0]
    assert bench.shortfalls([_row('ours (qga-polling)', 24750),
                             _row('threads baseline', 24750)]) == []


def test_targets_say_met_or_not():
    lines = bench.targets([_row('ours (qga-polling)', 24750),
                           _row('ours (qga-polling)', 2475, wall=1.2,
                                fleet='100 real, 0 silent')])
    text = '\n'.join(lines)
    assert 'cpu_ms_per_guest' in text and 'NOT MET' in text
    assert text.count(': met') == 3
    assert 'growth 1.0 MiB over 20 sweeps' in text


def test_bus_json_cost_reads_whole_lines_of_the_last_sweep(tmp_path):
    # Sweeps differ in size (latencies, errors), and the service may be
    # stopped in the middle of a line: neither reaches json.loads.
    line = json.dumps({'counter_name': 'guest.memory.used',
                       'counter_volume': 123456789,
                       'resource_metadata': {'instance_id': 'x' * 36}})
    output = tmp_path / 'samples.jsonl'
    short = line.replace('123456789', '1')
    output.write_text('\n'.join([short] * 30 + [line] * 10) + '\n'
                      + line[:25])
    size = len(short) * 10 + 10
    assert bench.bus_json_cost(str(output), 10, size, 2) > 0
