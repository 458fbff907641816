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

"""The two baselines of ``make bench``: how a simple poller would do it.

Both do, per guest and per sweep, what the 2013-style clients of the peers
do (OpenNebula's probe, the NetEase study): a
blocking unix socket with a per-command timeout (``socket.settimeout``: each
read waits at most ``--timeout`` seconds), connect, 0xFF +
``guest-sync-delimited``, ``guest-ping``, ``guest-info``, the OS facts
(``guest-get-osinfo``, ``guest-get-host-name``), then for each of our
collectors its native command when ``guest-info`` offers it, else its
``/proc`` file through ``guest-file-open``/``read``/``close``; then close.
That is the command set of our first sweep; our service caches
``guest-info`` and the facts across sweeps and keeps its connections open,
which these clients do not (that difference is the design, not noise).

* ``sequential``: one guest after another, in one thread;
* ``threads``: one thread per guest, all started at once each sweep.

They build the *same samples* as ours: the replies go through our pure
parsers and sample builder and are signed and JSON-encoded like our file
publisher (:func:`build_messages`, the one adapter onto the poller's
internals), and every sweep's lines are appended to ``--output`` in one
write.  They do not back off failing guests, have no per-guest budget (a
silent guest costs one timeout: the sync read), and publish nowhere but the
file.

Run as a process by :mod:`tests.bench.bench`; prints one JSON object: per-sweep
wall and CPU seconds (``time.process_time``), samples, lines and bytes
written, and VmHWM/VmRSS.

Usage::

    python -m tests.bench.bench_baselines --mode sequential --config-file CONF \\
        --output OUT.jsonl [--sweeps 5] [--max-seconds 60] [--timeout 1]

``CONF`` is the ``qga-polling`` configuration of the run: its
``[static_discovery] guests``, collectors and signing secret are used.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import sys
import threading
import time
from typing import Any

from oslo_config import cfg
from oslo_serialization import jsonutils
from oslo_utils import timeutils

READ_CHUNK = 16384
MAX_FILE_BYTES = 256 * 1024
MAX_REPLY = 1 << 20
FACT_COMMANDS = ('guest-get-osinfo', 'guest-get-host-name')
FILE_COMMANDS = ('guest-file-open', 'guest-file-read', 'guest-file-close')


class GuestDown(Exception):
    """The guest did not answer (timeout, refused, EOF); ``state`` says how."""

    def __init__(self, state: str, error: str) -> None:
        super().__init__(error)
        self.state = state


class BlockingClient:
    """qga on a blocking unix socket, every read bounded by ``timeout``."""

    def __init__(self, path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = b''
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise GuestDown('not_connected', 'cannot connect: %s' % exc)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def _recv(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise GuestDown('timeout', 'no reply within the timeout')
        except OSError as exc:
            raise GuestDown('not_connected', 'read failed: %s' % exc)
        if not chunk:
            raise GuestDown('protocol_error', 'agent closed the connection')
        self.buf += chunk
        if len(self.buf) > MAX_REPLY:
            raise GuestDown('protocol_error', 'reply too long')

    def _line(self) -> bytes:
        while b'\n' not in self.buf:
            self._recv()
        line, self.buf = self.buf.split(b'\n', 1)
        return line

    def sync(self) -> None:
        """0xFF + guest-sync-delimited; skip to the reply with our id."""
        sync_id = random.randint(1, 2 ** 31 - 1)
        self.sock.sendall(b'\xff' + json.dumps(
            {'execute': 'guest-sync-delimited',
             'arguments': {'id': sync_id}}).encode() + b'\n')
        while True:
            while b'\xff' not in self.buf:
                self._recv()
            self.buf = self.buf.split(b'\xff', 1)[1]
            try:
                if json.loads(self._line()).get('return') == sync_id:
                    return
            except ValueError:
                continue

    def call(self, command: str, arguments: dict | None = None
             ) -> dict[str, Any]:
        """Send one command; return the reply object (return or error)."""
        msg: dict[str, Any] = {'execute': command}
        if arguments:
            msg['arguments'] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        try:
            reply = json.loads(self._line())
        except ValueError:
            raise GuestDown('protocol_error', 'invalid JSON')
        if not isinstance(reply, dict):
            raise GuestDown('protocol_error', 'reply is not an object')
        return reply

    def read_file(self, path: str) -> str | None:
        """An allow-listed /proc file, or None when the agent refuses."""
        opened = self.call('guest-file-open', {'path': path, 'mode': 'r'})
        if 'return' not in opened:
            return None
        handle = opened['return']
        data = b''
        try:
            while len(data) <= MAX_FILE_BYTES:
                chunk = self.call('guest-file-read',
                                  {'handle': handle, 'count': READ_CHUNK})
                ret = chunk.get('return')
                if not isinstance(ret, dict):
                    return None
                raw = base64.b64decode(ret.get('buf-b64', ''))
                data += raw
                if not raw or ret.get('eof'):
                    break
        finally:
            self.call('guest-file-close', {'handle': handle})
        return data.decode('utf-8', 'replace')


def poll_guest(path: str, timeout: float, collectors: list) -> dict[str, Any]:
    """Every reply one guest gives in one sweep (see the module docstring)."""
    result: dict[str, Any] = {'state': 'ok', 'error': None,
                              'latency_ms': None, 'info': None,
                              'facts': {}, 'outcomes': []}
    try:
        client = BlockingClient(path, timeout)
    except GuestDown as exc:
        result.update(state=exc.state, error=str(exc))
        return result
    try:
        client.sync()
        start = time.monotonic()
        client.call('guest-ping')
        result['latency_ms'] = (time.monotonic() - start) * 1000.0
        info = client.call('guest-info').get('return')
        result['info'] = info
        enabled = {c.get('name') for c in (info or {}).get(
            'supported_commands', []) if c.get('enabled')}
        for command in FACT_COMMANDS:
            if command in enabled:
                result['facts'][command] = client.call(command).get('return')
        for collector in collectors:
            if collector.command and collector.command in enabled:
                reply = client.call(collector.command)
                result['outcomes'].append((collector, 'native', reply))
            elif collector.fallback_file and enabled.issuperset(
                    FILE_COMMANDS):
                text = client.read_file(collector.fallback_file)
                result['outcomes'].append((collector, 'fallback', text))
            else:
                result['outcomes'].append((collector, 'skipped', None))
    except GuestDown as exc:
        result.update(state=exc.state, error=str(exc))
    finally:
        client.close()
    return result


def build_messages(conf: cfg.ConfigOpts, guest, polled: dict[str, Any],
                   meters: dict, timestamp: str, monotonic_time: float
                   ) -> list[dict[str, Any]]:
    """The signed wire dicts of one guest, through our parsers and builder.

    The one adapter onto the poller's internals (report, outcome, sample
    builder, message signing), so that the baselines build exactly our
    samples; keep it in step when those move.
    """
    from ceilometer_qga.collectors import base as collector_base
    from ceilometer_qga.qga import os_facts as osfacts
    from ceilometer_qga import report as report_mod
    from ceilometer_qga import sample as sample_mod
    from ceilometer_qga import sample_factory

    report = report_mod.GuestReport(guest)
    report.state, report.error = polled['state'], polled['error']
    report.latency_ms = polled['latency_ms']
    info = polled['info'] or {}
    if info.get('version'):
        report.facts['agent_version'] = info['version']
    for command, parse in (('guest-get-osinfo', osfacts.parse_osinfo),
                           ('guest-get-host-name', osfacts.parse_hostname)):
        if polled['facts'].get(command) is not None:
            report.facts.update(parse(polled['facts'][command]))
    for collector, source, reply in polled['outcomes']:
        name = collector.__class__.__name__
        try:
            if source == 'native' and 'return' in reply:
                result = collector.parse(reply['return'])
            elif source == 'fallback' and reply is not None:
                result = collector.parse_file(reply)
            else:
                source, result = 'skipped', collector_base.ParseResult()
        except collector_base.BadReply:
            source, result = 'skipped', collector_base.ParseResult()
        report.outcomes.append(report_mod.CollectorOutcome(
            name, source, result))
    secret = conf.publisher.telemetry_secret
    return [sample_mod.to_message(s, secret)
            for s in sample_factory.build_samples(report, meters, timestamp,
                                                  monotonic_time)]


def make_conf(config_file: str | None) -> cfg.ConfigOpts:
    """Our options (defaults, or the bench's config file)."""
    from ceilometer_qga import conf as conf_mod
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf(['--config-file', config_file] if config_file else [],
         project='qga-monitor')
    return conf


def _memory() -> dict[str, int]:
    out = {}
    with open('/proc/self/status') as status:
        for line in status:
            key, _, value = line.partition(':')
            if key in ('VmHWM', 'VmRSS'):
                out[key] = int(value.split()[0]) * 1024
    return out


def run(mode: str, pairs: list[tuple[str, str]], conf: cfg.ConfigOpts,
        timeout: float, sweeps: int, max_seconds: float, output: str
        ) -> dict[str, Any]:
    """Sweep ``sweeps`` times (fewer if ``max_seconds`` runs out, >= 1)."""
    from ceilometer_qga.collectors import load_collectors
    from ceilometer_qga.discovery import static
    from ceilometer_qga import meters as meters_mod

    collectors = load_collectors(conf)
    meters = meters_mod.catalogue(collectors)
    guests = {g.instance_id: g for g in static.StaticDiscovery(
        conf, conf.static_discovery).discover()}
    fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    records = []
    began = time.monotonic()
    try:
        for _ in range(sweeps):
            wall0, cpu0 = time.monotonic(), time.process_time()
            timestamp = timeutils.utcnow().isoformat()  # as the poller
            mono = time.monotonic()
            messages: list[list[dict]] = [[] for _ in pairs]

            def one(index: int) -> None:
                instance_id, path = pairs[index]
                polled = poll_guest(path, timeout, collectors)
                messages[index] = build_messages(
                    conf, guests[instance_id], polled, meters, timestamp,
                    mono)
            if mode == 'sequential':
                for index in range(len(pairs)):
                    one(index)
            else:
                threads = [threading.Thread(target=one, args=(i,))
                           for i in range(len(pairs))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            lines = [jsonutils.dumps(m, allow_nan=False)
                     for per_guest in messages for m in per_guest]
            data = ''.join(line + '\n' for line in lines).encode('utf-8')
            os.write(fd, data)
            records.append({'wall': time.monotonic() - wall0,
                            'cpu': time.process_time() - cpu0,
                            'samples': len(lines), 'bytes': len(data),
                            'up': sum(1 for m in messages for s in m
                                      if s['counter_name'] == 'guest.agent.up'
                                      and s['counter_volume'] == 1),
                            **_memory()})
            if time.monotonic() - began > max_seconds:
                break
    finally:
        os.close(fd)
    return {'mode': mode, 'guests': len(pairs), 'sweeps': records}


def main(argv: list[str] | None = None) -> int:
    """Run one baseline; print its measurements as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--mode', choices=('sequential', 'threads'),
                        required=True)
    parser.add_argument('--config-file',
                        help='the qga-polling configuration of the run '
                             '(collectors, secret, static guests)')
    parser.add_argument('--output', required=True,
                        help='JSON-lines file the samples are appended to')
    parser.add_argument('--sweeps', type=int, default=5)
    parser.add_argument('--max-seconds', type=float, default=60.0,
                        help='stop after the sweep that passes this')
    parser.add_argument('--timeout', type=float, default=1.0)
    args = parser.parse_args(argv)
    from ceilometer_qga.discovery import static
    conf = make_conf(args.config_file)
    pairs = static.parse_guests(conf.static_discovery.guests)
    result = run(args.mode, pairs, conf, args.timeout, args.sweeps,
                 args.max_seconds, args.output)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
