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

"""``make demo``: the poller against three real guest agents, end to end.

1. Starts three real ``qemu-ga`` stand-in guests on unix sockets
   (``tests/fixtures/agents/qga_standin.py``: every command that is not read-only blocked,
   restarted if they exit).
2. Writes a ``qga-polling`` configuration: static discovery of the three
   sockets, the ``socket`` transport, samples to a JSON-lines file and, when
   RabbitMQ answers on 127.0.0.1:5672, to the bus as well (``notifier://``:
   exchange ``ceilometer``, topic ``notifications``, priority ``sample``,
   what Ceilometer's notification agent consumes).
3. Runs two sweeps: ``qga-polling --config-file FILE --once``, twice.
4. Prints the samples of the last sweep as one table per guest, and where
   the samples went.
5. Stops every process it started, by pid, whatever happened.

The configuration, the sample file and the poller's logs are kept in the
printed directory; sockets and agent state are removed.

Run as ``.venv/bin/python -m tools.demo`` from the checkout (``make demo`` installs .venv).
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Iterable, Sequence
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from ceilometer_qga import sample_factory

from tests.fixtures.agents import qga_standin
from tests.fixtures import processes

RABBIT_HOST = '127.0.0.1'
RABBIT_PORT = 5672
RABBIT_URL = 'rabbit://guest:guest@%s:%d/' % (RABBIT_HOST, RABBIT_PORT)
RABBIT_DESTINATION = 'RabbitMQ exchange ceilometer topic notifications.sample'

#: the demo's guests: a readable fixed uuid and a display name each
GUESTS = (
    ('guest1', '11111111-1111-4111-8111-111111111111'),
    ('guest2', '22222222-2222-4222-8222-222222222222'),
    ('guest3', '33333333-3333-4333-8333-333333333333'),
)

SWEEPS = 2
SWEEP_TIMEOUT = 120.0


def rabbit_answers(timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:5672."""
    try:
        with socket.create_connection((RABBIT_HOST, RABBIT_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def build_config(guests: Iterable[tuple[str, str]], samples_path: str,
                 use_rabbit: bool, interval: int = 10,
                 transport_url: str = RABBIT_URL) -> str:
    """The ``qga-polling`` configuration file of the demo.

    :param guests: (instance uuid, socket path) pairs
    :param samples_path: absolute path of the JSON-lines sample file
    :param use_rabbit: also publish to RabbitMQ on 127.0.0.1:5672
    :param transport_url: the broker (and vhost) to publish to
    """
    publishers = ['file://' + samples_path]
    lines = ['[DEFAULT]']
    if use_rabbit:
        publishers.append('notifier://')
        lines.append('transport_url = ' + transport_url)
    lines += [
        '',
        '[qga_polling]',
        'discovery = static',
        'transport = socket',
        'publishers = ' + ', '.join(publishers),
        'interval = %d' % interval,
        'command_timeout = 2.0',
        'guest_budget = 10.0',
        '',
        '[static_discovery]',
        'guests = ' + ','.join('%s=%s' % (uuid, path) for uuid, path in guests),
        '',
        '[publisher]',
        'telemetry_secret = qga-monitor-demo',
        '',
    ]
    return '\n'.join(lines)


def read_samples(path: str) -> list[dict[str, Any]]:
    """Every sample dict in a JSON-lines file (blank lines skipped)."""
    samples = []
    with open(path) as lines:
        for line in lines:
            if line.strip():
                samples.append(json.loads(line))
    return samples


def guest_of(sample: dict[str, Any], uuids: Sequence[str]) -> str | None:
    """The instance uuid a sample belongs to, or None.

    Instance-level samples have the uuid as ``resource_id``; per-filesystem,
    disk and interface samples have ``<uuid>-<item>``.
    """
    meta = sample.get('resource_metadata') or {}
    instance = meta.get('instance_id')
    if instance in uuids:
        return instance
    resource = str(sample.get('resource_id', ''))
    for uuid in uuids:
        if resource == uuid or resource.startswith(uuid + '-'):
            return uuid
    return None


def short_resource(resource_id: str, uuid: str) -> str:
    """What people call the resource: ``/var/lib``, ``vda``, ``(instance)``.

    Not the escaped resource-id suffix (``_2Fvar_2Flib``): the samples
    keep that in ``resource_id``; the table shows the name it encodes.
    """
    item = sample_factory.item_name(uuid, resource_id)
    return '(instance)' if item is None else item


def format_value(value: Any) -> str:
    """Numbers as people read them: grouped integers, short decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return '{:,}'.format(int(value))
    return '{:,.3f}'.format(value).rstrip('0').rstrip('.')


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 right: Iterable[int] = ()) -> str:
    """A plain-text table; columns listed in ``right`` are right-aligned."""
    right = set(right)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return '  '.join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(headers), rule] + [line(r) for r in rows])


def guest_tables(samples: Sequence[dict[str, Any]],
                 guests: Sequence[tuple[str, str]]) -> str:
    """One table per guest: meter, resource, value, unit (latest value).

    :param samples: sample dicts in publishing order (later wins)
    :param guests: (name, instance uuid) pairs, in display order
    """
    uuids = [uuid for _, uuid in guests]
    latest: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
        uuid: {} for uuid in uuids}
    for sample in samples:
        uuid = guest_of(sample, uuids)
        if uuid is not None:
            key = (sample.get('counter_name', '?'), str(sample.get('resource_id', '')))
            latest[uuid][key] = sample
    with_via = any(_via(s) for s in samples)
    headers = ('meter', 'resource', 'value', 'unit') + (('via',) if with_via else ())
    out = []
    for name, uuid in guests:
        rows = [(meter, short_resource(resource, uuid),
                 format_value(s.get('counter_volume')), str(s.get('counter_unit', '')))
                + ((_via(s),) if with_via else ())
                for (meter, resource), s in sorted(latest[uuid].items())]
        meta = next(iter(latest[uuid].values()), {}).get('resource_metadata') or {}
        title = '%s  %s' % (name, uuid)
        # Static guests are named by their uuid: nothing to add then.
        if meta.get('display_name') and meta['display_name'] not in (name, uuid):
            title += '  (%s)' % meta['display_name']
        out.append(title)
        out.append(format_table(headers, rows, right=(2,)) if rows else '  no samples')
        out.append('')
    return '\n'.join(out)


#: ``resource_metadata['collected_by']`` → what the table says
VIA = {'native': 'qga', 'fallback': '/proc'}


def _via(sample: dict[str, Any]) -> str:
    source = (sample.get('resource_metadata') or {}).get('collected_by')
    return VIA.get(source, source or '')


def meter_sources(samples: Sequence[dict[str, Any]]) -> str:
    """Which meters came from native qga commands and which from /proc files."""
    by_via: dict[str, set[str]] = collections.defaultdict(set)
    for sample in samples:
        by_via[_via(sample)].add(str(sample.get('counter_name')))
    labels = {'qga': 'from qga commands',
              '/proc': 'from /proc files read with guest-file-read (no qga command)',
              '': 'about the agent itself'}
    lines = ['%d samples, %d meters:' % (len(samples),
                                         len({s.get('counter_name') for s in samples}))]
    known = [v for v in labels if v in by_via]
    for via in known + sorted(set(by_via) - set(known)):
        lines.append('  %-3d %s: %s' % (len(by_via[via]), labels.get(via, 'via ' + via),
                                        ', '.join(_compact(sorted(by_via[via])))))
    return '\n'.join(lines)


def _compact(meters: Sequence[str]) -> list[str]:
    """``guest.load.1, guest.load.5`` → ``guest.load.{1,5}``, for short lines."""
    groups: dict[str, list[str]] = {}
    for meter in meters:
        head, _, tail = meter.rpartition('.')
        groups.setdefault(head or meter, []).append(tail if head else '')
    out = []
    for head, tails in groups.items():
        tails.sort(key=lambda t: (not t.isdigit(), int(t) if t.isdigit() else 0, t))
        if len(tails) == 1:
            out.append(head + ('.' + tails[0] if tails[0] else ''))
        else:
            out.append('%s.{%s}' % (head, ','.join(tails)))
    return out


def destinations(samples_path: str, file_count: int, use_rabbit: bool,
                 bus_count: int, transport_url: str = RABBIT_URL) -> str:
    """Where the samples went, one line per publisher.

    ``bus_count`` is what ``qga-polling --once`` delivered: it exits 0 only
    when its publishers confirmed every sample.
    """
    lines = ['Samples went to:',
             '  file      %s  (%d samples, one JSON object per line)'
             % (samples_path, file_count)]
    if use_rabbit:
        lines.append('  bus       %s  (%d samples delivered, %s)'
                     % (RABBIT_DESTINATION, bus_count, transport_url))
    else:
        lines.append('  bus       not used: nothing answers on %s:%d '
                     '(`make test` starts RabbitMQ)' % (RABBIT_HOST, RABBIT_PORT))
    return '\n'.join(lines)


def polling_command() -> str:
    """``qga-polling`` of this interpreter's environment (.venv/bin)."""
    beside = os.path.join(os.path.dirname(sys.executable), 'qga-polling')
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which('qga-polling')
    if not found:
        raise SystemExit('demo: qga-polling is not installed (run tools/install_deps.sh)')
    return found


def run_sweep(argv: Sequence[str], log_path: str, running: list[subprocess.Popen],
              timeout: float = SWEEP_TIMEOUT) -> int:
    """Run one ``qga-polling --once``; its output goes to ``log_path``."""
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    running.append(proc)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        processes.stop_process(proc)
        raise SystemExit('demo: qga-polling --once did not finish within %ds (log: %s)'
                         % (timeout, log_path))
    finally:
        processes.stop_process(proc)
        running.remove(proc)


def _terminate(signum: int, frame: Any) -> None:
    # Turn SIGTERM into an exception so the finally blocks stop everything.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when both sweeps produced samples."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--outdir', help='where to keep config, samples and logs '
                        '(default: a new directory under /tmp)')
    parser.add_argument('--transport-url', default=RABBIT_URL,
                        help='oslo.messaging URL of the local RabbitMQ '
                        '(default %(default)s)')
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)

    outdir = args.outdir or tempfile.mkdtemp(prefix='qga-demo-', dir='/tmp')
    os.makedirs(outdir, exist_ok=True)
    samples_path = os.path.join(outdir, 'samples.jsonl')
    config_path = os.path.join(outdir, 'qga-polling.conf')
    if os.path.exists(samples_path):
        os.unlink(samples_path)
    use_rabbit = rabbit_answers()
    polling = polling_command()
    running: list[subprocess.Popen] = []
    fleet = qga_standin.StandinFleet(names=[name for name, _ in GUESTS])
    try:
        started = time.monotonic()
        fleet.start()
        print('Started %d real qemu-ga stand-in guests in %.2fs '
              '(every command that is not read-only is blocked):'
              % (len(fleet), time.monotonic() - started))
        for guest, (_, uuid) in zip(fleet, GUESTS):
            print('  %-7s %s  pid %-7s %s' % (guest.name, uuid, guest.pid, guest.socket))
        with open(config_path, 'w') as conf:
            conf.write(build_config([(uuid, guest.socket)
                                     for guest, (_, uuid) in zip(fleet, GUESTS)],
                                    samples_path, use_rabbit,
                                    transport_url=args.transport_url))
        counts = []
        for sweep in range(1, SWEEPS + 1):
            log_path = os.path.join(outdir, 'qga-polling-%d.log' % sweep)
            t0 = time.monotonic()
            rc = run_sweep([polling, '--config-file', config_path, '--once'],
                           log_path, running)
            took = time.monotonic() - t0
            total = len(read_samples(samples_path)) if os.path.exists(samples_path) else 0
            counts.append(total - sum(counts))
            print('Sweep %d: qga-polling --once exited %d after %.1fs, %d samples'
                  % (sweep, rc, took, counts[-1]))
            if rc != 0:
                with open(log_path, errors='replace') as log:
                    sys.stderr.write(log.read()[-4000:])
                print('demo: qga-polling failed; config %s, log %s'
                      % (config_path, log_path), file=sys.stderr)
                return 1
        samples = read_samples(samples_path)
        if not samples:
            print('demo: no samples were written to %s' % samples_path, file=sys.stderr)
            return 1
        print()
        print('Samples of the last sweep, per guest:')
        print()
        print(guest_tables(samples, GUESTS))
        print(meter_sources(samples))
        print()
        # Every sweep exited 0, which qga-polling --once does only when all
        # publishers were flushed: the bus got what the file got.
        print(destinations(samples_path, len(samples), use_rabbit, len(samples),
                           args.transport_url))
        print('  config    %s' % config_path)
        return 0
    finally:
        for proc in list(running):
            processes.stop_process(proc)
        fleet.stop()
        print('Stopped every process the demo started (%d qemu-ga pids).'
              % sum(len(g.pids) for g in fleet))


if __name__ == '__main__':
    sys.exit(main())
