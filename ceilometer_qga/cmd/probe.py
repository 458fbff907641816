"""``qga-probe``: look at one guest agent from the host.

``qga-probe --socket /var/lib/qga-monitor/<uuid>.sock [--json]`` connects to
one agent socket, and prints what it answers: its version, the commands it
has enabled and disabled, every meter the collectors get from it (and
whether natively or through a /proc fallback), and the round-trip time of
each command.  It sends exactly what the poller would send (the read-only
allow-list applies) and needs no configuration file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from typing import Any

from oslo_config import cfg

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga import conf as conf_mod
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport as transport_mod
from ceilometer_qga.qga import transport_socket
from ceilometer_qga import sample_factory
from ceilometer_qga.report import GuestReport
from ceilometer_qga import session as session_mod


class TimedTransport(transport_mod.Transport):
    """Wraps a transport and records each command's round trip."""

    def __init__(self, inner: transport_mod.Transport) -> None:
        super().__init__(inner.guest, inner.default_timeout)
        self.inner = inner
        self.timings: list[tuple[str, float, str]] = []

    @property
    def generation(self) -> int:  # type: ignore[override]
        """The wrapped transport's generation."""
        return self.inner.generation

    @generation.setter
    def generation(self, value: int) -> None:
        pass  # owned by the wrapped transport

    def new_sweep(self) -> None:
        """Pass the start of a sweep on to the wrapped transport."""
        self.inner.new_sweep()

    async def _execute(self, command: str, arguments: dict[str, Any] | None,
                       timeout: float) -> Any:
        start = time.monotonic()
        outcome = 'ok'
        try:
            return await self.inner.execute(command, arguments, timeout)
        except errors.QgaError as exc:
            outcome = exc.state
            raise
        finally:
            self.timings.append((command, (time.monotonic() - start) * 1000,
                                 outcome))

    async def close(self) -> None:
        """Close the wrapped transport."""
        await self.inner.close()


async def probe(socket_path: str, timeout: float,
                pings: int) -> dict[str, Any]:
    """Probe one agent socket; return a JSON-able report."""
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='qga-monitor')
    conf.set_override('command_timeout', timeout, 'qga_polling')
    guest = Guest(instance_id='probe', name=socket_path,
                  channels=(Channel('probe', socket_path),))
    timed = TimedTransport(transport_socket.SocketTransport(
        'probe', socket_path, timeout, conf.qga_polling.max_reply_bytes))
    session = session_mod.GuestSession(guest, timed, conf)
    report = GuestReport(guest)
    collectors = load_collectors(conf)
    units = {m.name: m.unit for c in collectors for m in c.meters}
    out: dict[str, Any] = {'socket': socket_path}
    try:
        await session.poll(collectors, report)
        ping_ms = []
        for _ in range(pings):
            start = time.monotonic()
            await timed.inner.execute('guest-ping')
            ping_ms.append((time.monotonic() - start) * 1000)
    except errors.QgaError as exc:
        out.update(state=exc.state, error=str(exc))
        return out
    finally:
        await session.close()
    caps = session.capabilities
    assert caps is not None
    meters = []
    for outcome in report.outcomes:
        for reading in outcome.result.readings:
            meters.append({
                'meter': reading.meter,
                'resource': sample_factory.resource_id('<uuid>',
                                                       reading.item),
                'value': reading.volume,
                'unit': units.get(reading.meter, ''),
                'via': outcome.source})
    out.update(
        state='ok', agent_version=caps.version, facts=report.facts,
        enabled=sorted(caps.enabled), disabled=sorted(caps.disabled),
        meters=meters,
        skipped={o.name: o.reason for o in report.outcomes
                 if o.source == 'skipped'},
        dropped={o.name: o.result.dropped for o in report.outcomes
                 if o.result.dropped},
        commands=[{'command': c, 'ms': round(ms, 3), 'outcome': r}
                  for c, ms, r in timed.timings],
        ping_ms={'count': len(ping_ms),
                 'median': round(statistics.median(ping_ms), 3),
                 'max': round(max(ping_ms), 3)} if ping_ms else {})
    return out


def render(report: dict[str, Any]) -> str:
    """Human-readable text of a probe report."""
    lines = ['Agent socket: %s' % report['socket']]
    if report.get('state') != 'ok':
        lines.append('State: %s (%s)' % (report.get('state'),
                                         report.get('error')))
        return '\n'.join(lines)
    lines.append('Agent version: %s' % report['agent_version'])
    for key, value in sorted(report['facts'].items()):
        lines.append('  %-16s %s' % (key, value))
    lines.append('Enabled commands (%d): %s' % (len(report['enabled']),
                                                ', '.join(report['enabled'])))
    lines.append('Disabled commands (%d): %s'
                 % (len(report['disabled']), ', '.join(report['disabled'])))
    lines.append('')
    lines.append('%-36s %-24s %16s %-8s %s'
                 % ('meter', 'resource', 'value', 'unit', 'via'))
    for m in report['meters']:
        lines.append('%-36s %-24s %16s %-8s %s' % (
            m['meter'], m['resource'], _fmt(m['value']), m['unit'], m['via']))
    for name, reason in sorted(report['skipped'].items()):
        lines.append('skipped %s: %s' % (name, reason))
    for name, reasons in sorted(report['dropped'].items()):
        for reason in reasons:
            lines.append('dropped by %s: %s' % (name, reason))
    lines.append('')
    lines.append('%-32s %10s  %s' % ('command', 'ms', 'outcome'))
    for c in report['commands']:
        lines.append('%-32s %10.3f  %s' % (c['command'], c['ms'],
                                           c['outcome']))
    if report['ping_ms']:
        p = report['ping_ms']
        lines.append('guest-ping x%d: median %.3f ms, max %.3f ms'
                     % (p['count'], p['median'], p['max']))
    return '\n'.join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return '%.3f' % value
    return str(value)


def _bounded(kind: type, low: float, high: float):
    """An argparse type: a finite ``kind`` from ``low`` to ``high``.

    argparse turns its ArgumentTypeError into one usage line and exit 2.
    """
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not (
                low <= value <= high):
            raise argparse.ArgumentTypeError(
                '%r: accepted: %s from %s to %s' % (
                    text, 'an integer' if kind is int else 'a finite number',
                    low, high))
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``qga-probe``; exit 0 if the agent answered."""
    parser = argparse.ArgumentParser(
        prog='qga-probe', description='Show what one guest agent answers.')
    parser.add_argument('--socket', required=True,
                        help='unix socket of the agent channel')
    parser.add_argument('--json', action='store_true',
                        help='print the report as JSON')
    # The same range as [qga_polling] command_timeout, which it overrides.
    timeout_range = conf_mod.option(conf_mod.POLLING_GROUP,
                                    'command_timeout').type
    parser.add_argument('--timeout', type=_bounded(float, timeout_range.min,
                                                   timeout_range.max),
                        default=2.0,
                        help='seconds per command (default 2)')
    parser.add_argument('--pings', type=_bounded(int, 0, 10000), default=20,
                        help='extra guest-ping round trips to time')
    args = parser.parse_args(argv)
    report = asyncio.run(probe(args.socket, args.timeout, args.pings))
    print(json.dumps(report, indent=2, sort_keys=True) if args.json
          else render(report))
    return 0 if report.get('state') == 'ok' else 1


if __name__ == '__main__':
    sys.exit(main())
