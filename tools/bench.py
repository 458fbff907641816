#!/usr/bin/env python3
"""``make bench``: qga-monitor against named baselines, in one run.

Every row is measured now, on this machine, against real qemu-ga 7.2
stand-in guests; the ratio column compares with the baseline named in the
row, measured in the same run.

1. Sweep of a host: N stand-in guests plus H hung ones (sockets that accept
   and never answer, like a VM whose agent is not running).  Ours: one
   ``Pipeline`` sweep (all collectors, bounded concurrency).  Baseline:
   a straightforward blocking client, guests one after another
   with the same commands and the same per-command timeout (what peers such
   as OpenNebula's probe and the NetEase study do).
2. Per-command latency of guest-ping: our asyncio transport (policy check,
   framing, byte cap) against the blocking standard-library client.
   The same against a client built on QEMU's ``qemu.qmp``
   (``tools/qmp_qga_client.py``).
3. Sample signing: ours against Ceilometer's own ``compute_signature``.

Usage: ``python tools/bench.py [--guests 16] [--hung 2] [--pings 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import sys
import tempfile
import time

from oslo_config import cfg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from ceilometer_qga import conf as conf_mod  # noqa: E402
from ceilometer_qga.qga import transport_socket  # noqa: E402
from ceilometer_qga import pipeline as pipeline_mod  # noqa: E402
from ceilometer_qga import sample as sample_mod  # noqa: E402
from ceilometer_qga import signature  # noqa: E402
from tools.qga_standin import RawClient  # noqa: E402
from tools.qga_standin import StandinFleet  # noqa: E402

TIMEOUT = 1.0
#: each figure is the median of this many runs
REPEATS = 5
# The commands one sweep sends per guest with qemu-ga 7.2 (see collectors).
SWEEP_COMMANDS = ['guest-ping', 'guest-info', 'guest-get-osinfo',
                  'guest-get-host-name', 'guest-get-fsinfo',
                  'guest-get-cpustats', 'guest-get-diskstats',
                  'guest-network-get-interfaces', 'guest-get-users',
                  'guest-get-vcpus']
PROC_FILES = ['/proc/meminfo', '/proc/loadavg']


def baseline_sweep(sockets: list[str]) -> float:
    """Guests one after another, blocking client, same commands."""
    start = time.monotonic()
    for path in sockets:
        try:
            with RawClient(path, timeout=TIMEOUT) as client:
                for command in SWEEP_COMMANDS:
                    client.call(command)
                for path_ in PROC_FILES:
                    handle = client.call('guest-file-open',
                                         {'path': path_, 'mode': 'r'})
                    client.call('guest-file-read',
                                {'handle': handle, 'count': 16384})
                    client.call('guest-file-close', {'handle': handle})
        except (OSError, ValueError, RuntimeError):
            pass  # a hung guest costs its timeout, as in the peers
    return time.monotonic() - start


def our_sweep(sockets: list[str], concurrency: int) -> tuple[float, int]:
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='qga-monitor')
    for name, value in (('discovery', 'static'), ('transport', 'socket'),
                        ('publishers', []), ('command_timeout', TIMEOUT),
                        ('guest_budget', 5.0),
                        ('max_concurrent_guests', concurrency)):
        conf.set_override(name, value, 'qga_polling')
    conf.set_override('guests', ['00000000-0000-4000-8000-%012d=%s' % (i, p)
                                 for i, p in enumerate(sockets)],
                      'static_discovery')

    async def run() -> tuple[float, int]:
        runner = pipeline_mod.Pipeline(conf)
        try:
            result = await runner.run_once()
            return result.duration, len(result.samples)
        finally:
            await runner.close()
    return asyncio.run(run())


def ping_latency(path: str, count: int) -> tuple[float, float]:
    """Median guest-ping ms: (ours, baseline)."""
    with RawClient(path, timeout=TIMEOUT) as client:
        base = []
        for _ in range(count):
            start = time.perf_counter()
            client.call('guest-ping')
            base.append(time.perf_counter() - start)

    async def ours() -> list[float]:
        t = transport_socket.SocketTransport('bench', path, TIMEOUT, 1 << 20)
        await t.execute('guest-ping')
        out = []
        for _ in range(count):
            start = time.perf_counter()
            await t.execute('guest-ping')
            out.append(time.perf_counter() - start)
        await t.close()
        return out
    mine = asyncio.run(ours())
    return statistics.median(mine) * 1000, statistics.median(base) * 1000


def qmp_ping_latency(path: str, count: int) -> tuple[float, float]:
    """Median guest-ping ms: (ours, the qemu.qmp-based prototype)."""
    from tools.qmp_qga_client import QgaQmpClient

    async def measure(connect, ping, close) -> float:
        client = await connect()
        await ping(client)
        out = []
        for _ in range(count):
            start = time.perf_counter()
            await ping(client)
            out.append(time.perf_counter() - start)
        await close(client)
        return statistics.median(out) * 1000

    async def our_connect():
        return transport_socket.SocketTransport('bench', path, TIMEOUT, 1 << 20)

    async def qmp_connect():
        client = QgaQmpClient()
        await client.connect(path)
        return client

    async def run() -> tuple[float, float]:
        mine = await measure(our_connect,
                             lambda t: asyncio.wait_for(t.execute('guest-ping'), TIMEOUT),
                             lambda t: t.close())
        qmp = await measure(qmp_connect,
                            lambda c: asyncio.wait_for(c.call('guest-ping'), TIMEOUT),
                            lambda c: c.disconnect())
        return mine, qmp
    return asyncio.run(run())


def signing(count: int) -> tuple[float, float]:
    """Microseconds per signed sample: (ours, Ceilometer's)."""
    from ceilometer.publisher import utils as ceilo_utils
    sample = sample_mod.Sample(
        'guest.filesystem.used', 'gauge', 'B', 12345, 'u', 'p',
        'r-_2F', '2026-11-25T10:00:00', {
            'display_name': 'vm', 'flavor': {'name': 'm1', 'vcpus': 1},
            'mountpoint': '/', 'fstype': 'ext4', 'list': ['a', 'b']})
    msg = sample_mod.to_message(sample, 's')

    def per_sample(fn) -> float:
        start = time.perf_counter()
        for _ in range(count):
            fn(msg, 's')
        return (time.perf_counter() - start) / count * 1e6
    return interleaved(lambda: per_sample(signature.compute),
                       lambda: per_sample(ceilo_utils.compute_signature))


def interleaved(ours, baseline, repeats: int = REPEATS) -> tuple[float, float]:
    """Medians of ``repeats`` alternating runs of ours and the baseline.

    Alternating puts warm-up, caches and the other core's load on both
    sides alike.
    """
    mine, base = [], []
    for _ in range(repeats):
        mine.append(ours())
        base.append(baseline())
    return statistics.median(mine), statistics.median(base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--guests', type=int, default=16)
    parser.add_argument('--hung', type=int, default=2)
    parser.add_argument('--pings', type=int, default=2000)
    parser.add_argument('--concurrency', type=int, default=8)
    args = parser.parse_args(argv)
    # The hung guests are expected; their state changes are not news here.
    logging.getLogger('ceilometer_qga').setLevel(logging.ERROR)

    workdir = tempfile.mkdtemp(prefix='qgab', dir='/tmp')
    hung = []
    for i in range(args.hung):
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.path.join(workdir, 'hung%d.sock' % i))
        sock.listen(64)
        hung.append(sock)
    rows = []
    with StandinFleet(args.guests, workdir=workdir) as fleet:
        sockets = [g.socket for g in fleet]
        sockets += [s.getsockname() for s in hung]
        # warm both paths once (page cache, agent start-up)
        our_sweep(sockets[:1], 1)
        baseline_sweep(sockets[:1])
        samples = our_sweep(sockets, args.concurrency)[1]
        ours, base = interleaved(
            lambda: our_sweep(sockets, args.concurrency)[0],
            lambda: baseline_sweep(sockets), repeats=3)
        label = 'sweep %d guests + %d hung (s)' % (args.guests, args.hung)
        rows.append((label, ours, 'sequential blocking client', base))
        no_hung = sockets[:args.guests]
        ours_ok, base_ok = interleaved(
            lambda: our_sweep(no_hung, args.concurrency)[0],
            lambda: baseline_sweep(no_hung))
        rows.append(('sweep %d healthy guests (s)' % args.guests, ours_ok,
                     'sequential blocking client', base_ok))
        mine_ms, base_ms = ping_latency(sockets[0], args.pings)
        rows.append(('guest-ping median (ms)', mine_ms,
                     'stdlib blocking client', base_ms))
        results = [qmp_ping_latency(sockets[0], args.pings)
                   for _ in range(REPEATS)]
        rows.append(('guest-ping median (ms)',
                     statistics.median(r[0] for r in results),
                     'qemu.qmp client (prototype)',
                     statistics.median(r[1] for r in results)))
    for sock in hung:
        sock.close()
    mine_us, ceilo_us = signing(2000)
    rows.append(('sign one sample (us)', mine_us,
                 'ceilometer compute_signature', ceilo_us))

    print('qga-monitor benchmark (%d cores, qemu-ga stand-ins, %d samples '
          'per sweep)' % (os.cpu_count(), samples))
    print('%-34s %12s  %-30s %12s %8s' % ('measure', 'ours', 'baseline',
                                          'baseline', 'ratio'))
    for name, mine, base_name, base_value in rows:
        print('%-34s %12.4f  %-30s %12.4f %7.2fx' % (
            name, mine, base_name, base_value, base_value / mine))
    print('ratio = baseline / ours (above 1: ours is faster); every figure '
          'is a median of interleaved runs')
    return 0


if __name__ == '__main__':
    sys.exit(main())
