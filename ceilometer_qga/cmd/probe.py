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

"""``qga-probe``: look at guest agents from the host, as an operator.

Three ways to name what to look at::

    qga-probe [--config-file FILE] INSTANCE [--json]
    qga-probe [--config-file FILE] --all [--json]
    qga-probe --socket PATH [--json]

``INSTANCE`` is an instance uuid, a Nova display name or a libvirt domain
name, looked up with the discovery the poller uses (``[qga_polling]
discovery``, ``[libvirt_discovery] uri``; the configuration files are
found as ``qga-polling`` finds them).  The agent is reached the way the
poller reaches it (``[qga_polling] transport``) and the report says through
which channel.  It shows the agent's version, the commands it has enabled
and disabled, every meter the collectors get from it (natively or through a
``/proc`` fallback, by mountpoint, disk or interface name) and the round
trip of each command.

``--all`` is one sweep of the poller's own engine over every guest of the
node (``[qga_polling] max_concurrent_guests`` at a time, each bounded by
``command_timeout`` and ``guest_budget``, so a hung agent costs its timeout
once) and prints one line per guest, the unhealthy first.

``--socket`` talks to one agent socket directly, without configuration.

Every collector runs, whatever ``[qga_polling] collector_intervals`` says:
the probe shows what the agent answers now.

Only what the poller sends is sent (the read-only allow-list applies).

Exit status: 0 the agent answered (``--all``: every guest is ``ok`` or
``legacy``); 1 it did not (``--all``: some guest is in another state);
2 a usage or configuration error, discovery failed, or ``INSTANCE`` matches
no guest or several (they are listed).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga import conf as conf_mod
from ceilometer_qga import discovery as discovery_mod
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.guest import LEGACY
from ceilometer_qga import poller as poller_mod
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import selection
from ceilometer_qga.report import GuestReport
from ceilometer_qga import sample_factory
from ceilometer_qga import schedule

LOG = logging.getLogger(__name__)

EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2

MAX_PINGS = 10000

#: states that are not a problem of the agent: listed last by ``--all``
HEALTHY_STATES = ('ok', LEGACY)

cli_opts = [
    cfg.StrOpt('instance', positional=True, required=False,
               metavar='INSTANCE',
               help='Instance uuid, Nova display name or libvirt domain '
                    'name of the guest to probe.'),
    cfg.BoolOpt('all', default=False,
                help='One line per guest of this host: agent state, '
                     'version, ping latency, transport, meters.'),
    cfg.StrOpt('socket', metavar='PATH',
               help='Probe the agent on this unix socket directly (no '
                    'discovery).'),
    cfg.BoolOpt('json', default=False,
                help='Print the report as JSON.'),
    # Strings, checked by number_arg(): oslo.config would only say
    # "invalid value" and lets nan and inf through a FloatOpt's bounds.
    cfg.StrOpt('timeout', metavar='SECONDS',
               help='Seconds per command (default: [qga_polling] '
                    'command_timeout, whose range it has).'),
    cfg.StrOpt('pings', default='20', metavar='N',
               help='Extra guest-ping round trips to time, 0 to %d (not '
                    'with --all).' % MAX_PINGS),
]


class UsageError(Exception):
    """The command line or what it names is wrong; the message says how."""


def number_arg(flag: str, text: str, kind: type, low: float,
               high: float) -> float:
    """``text`` as a finite ``kind`` from ``low`` to ``high``.

    :raises UsageError: naming ``flag`` and the accepted range
    """
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not low <= value <= high:
        raise UsageError('%s %r: accepted: %s from %s to %s' % (
            flag, text, 'an integer' if kind is int else 'a finite number',
            low, high))
    return value


def prepare(argv: list[str]) -> cfg.ConfigOpts:
    """Parse the command line and the configuration files; set up logging.

    Without ``--config-file`` the files ``qga-polling`` reads by default
    (``/etc/qga-monitor/qga-polling.conf``...) are read, so that the probe
    sees what the poller sees.
    """
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    # The probe reports every guest's state itself; the poller's per-guest
    # state-change warnings would only repeat it on stderr.
    logging.set_defaults(default_log_levels=logging.get_default_log_levels()
                         + ['ceilometer_qga.poller=ERROR'])
    conf_mod.register_opts(conf)
    conf.register_cli_opts(cli_opts)
    conf(argv, project='qga-monitor', prog='qga-probe',
         description='Show what the guest agents of this host answer: one '
                     'instance (INSTANCE), every guest (--all), or one agent '
                     'socket (--socket). Exit status 0: answered; 1: not; '
                     '2: usage, configuration or discovery error, or '
                     'INSTANCE matches no guest or several.',
         default_config_files=cfg.find_config_files('qga-monitor',
                                                    'qga-polling'))
    if not conf.log_file:
        # stdout is the report (JSON for scripts); logs go to stderr.
        conf.set_override('use_stderr', True)
    logging.setup(conf, 'qga-probe')
    if conf.timeout is not None:
        # The same range as [qga_polling] command_timeout, which it overrides.
        bounds = conf_mod.option(conf_mod.POLLING_GROUP,
                                 'command_timeout').type
        conf.set_override('command_timeout',
                          number_arg('--timeout', conf.timeout, float,
                                     bounds.min, bounds.max), 'qga_polling')
    chosen = [bool(conf.instance), conf.all, bool(conf.socket)]
    if sum(chosen) != 1:
        raise UsageError('give exactly one of INSTANCE, --all or --socket '
                         'PATH')
    return conf


# -- finding the guest ------------------------------------------------------

def describe_guest(guest: Guest) -> str:
    """``uuid  domain-name  (display name)`` for messages and titles."""
    text = '%s  %s' % (guest.instance_id, guest.name)
    if guest.display_name:
        text += '  (%s)' % guest.display_name
    return text


def find_guests(guests: list[Guest], key: str) -> list[Guest]:
    """The guests whose uuid, domain name or display name is ``key``.

    Uuids compare without regard to case, names exactly.
    """
    return [g for g in guests
            if g.instance_id.lower() == key.lower() or key in (
                g.name, g.display_name)]


def discover(conf: cfg.ConfigOpts) -> list[Guest]:
    """The guests of this host, through the configured discovery.

    :raises UsageError: the discovery cannot be built or cannot answer
    """
    try:
        plugin = discovery_mod.load_discovery(conf)
    except ValueError as exc:
        raise UsageError('configuration error: %s' % exc) from exc
    try:
        return plugin.discover()
    except discovery_mod.DiscoveryError as exc:
        raise UsageError('discovery failed: %s' % exc) from exc
    finally:
        plugin.close()


def resolve(conf: cfg.ConfigOpts, key: str) -> Guest:
    """The one guest ``key`` names.

    :raises UsageError: none or several match (the message lists them)
    """
    guests = discover(conf)
    found = find_guests(guests, key)
    if len(found) == 1:
        return found[0]
    where = '%s discovery' % conf.qga_polling.discovery
    uri = discovery_mod.libvirt_uri(conf)
    if uri:
        where += ' of %s' % uri
    if not found:
        raise UsageError('no instance %r among the %d guests found by %s '
                         '(give an instance uuid, a display name or a '
                         'domain name)' % (key, len(guests), where))
    raise UsageError('%d instances match %r; give the uuid of one:\n%s'
                     % (len(found), key, '\n'.join(
                         '  ' + describe_guest(g) for g in found)))


def socket_guest(conf: cfg.ConfigOpts, path: str) -> Guest:
    """A guest whose only channel is the agent socket ``path``."""
    conf.set_override('transport', 'socket', 'qga_polling')
    return Guest(instance_id='probe', name=path,
                 channels=(Channel(conf.qga_polling.monitor_channel_name,
                                   path),))


# -- what a report says ------------------------------------------------------

def channel_of(report: GuestReport) -> dict[str, Any]:
    """Which channel and transport the probe used, JSON-able."""
    channel = report.channel
    return {
        'transport': report.transport_kind,
        'channel': channel.target_name if channel else None,
        'path': channel.path if channel else None,
        'reason': report.transport_reason}


def meters_of(report: GuestReport,
              units: dict[str, str]) -> list[dict[str, Any]]:
    """Every reading: meter, escaped resource id and human item name."""
    instance_id = report.guest.instance_id
    return [{'meter': reading.meter,
             'resource_id': sample_factory.resource_id(instance_id,
                                                       reading.item),
             'item': reading.item,
             'value': reading.volume,
             'unit': units.get(reading.meter, ''),
             'via': outcome.source}
            for outcome in report.outcomes
            for reading in outcome.result.readings]


def meter_counts(report: GuestReport) -> dict[str, int]:
    """How many distinct meters came natively and by /proc fallback."""
    counts = {}
    for source in ('native', 'fallback'):
        counts[source] = len({r.meter for o in report.outcomes
                              if o.source == source
                              for r in o.result.readings})
    return counts


def guest_fields(guest: Guest) -> dict[str, Any]:
    """The identity of a guest, JSON-able."""
    return {'instance_id': guest.instance_id, 'name': guest.name,
            'display_name': guest.display_name}


# -- one guest ---------------------------------------------------------------

async def probe_guest(conf: cfg.ConfigOpts, guest: Guest,
                      pings: int) -> dict[str, Any]:
    """Probe one guest with the poller's engine; return a JSON-able report."""
    collectors = load_collectors(conf)
    units = {m.name: m.unit for c in collectors for m in c.meters}
    # Every collector: the probe shows what the agent answers now.
    timings: list[tuple[str, float, str]] = []
    selector = selection.TransportSelector(
        conf, on_command=lambda *timing: timings.append(timing))
    poller = poller_mod.Poller(conf, collectors, selector,
                               intervals=schedule.EVERY_SWEEP)
    try:
        result = await poller.sweep([guest])
        report = result.reports[0]
        out: dict[str, Any] = {'instance': guest_fields(guest)}
        out.update(channel_of(report))
        out['state'], error = report.state, report.error
        if error:
            out['error'] = error
        if not report.up:
            return out
        commands = list(timings)  # the sweep's, not the extra pings
        ping_ms = []
        try:
            for _ in range(pings):
                ping_ms.append(await poller.ping(guest.instance_id))
        except errors.QgaError as exc:
            out.update(state=exc.state, error=str(exc))
    finally:
        await poller.close()
    caps = report.capabilities
    out.update(
        agent_version=caps.version if caps else None,
        facts=report.facts,
        enabled=sorted(caps.enabled) if caps else [],
        disabled=sorted(caps.disabled) if caps else [],
        latency_ms=round(report.latency_ms, 3),
        meters=meters_of(report, units),
        meter_counts=meter_counts(report),
        skipped={o.name: o.reason for o in report.outcomes
                 if o.source == 'skipped'},
        dropped={o.name: o.result.dropped for o in report.outcomes
                 if o.result.dropped},
        commands=[{'command': c, 'ms': round(ms, 3), 'outcome': r}
                  for c, ms, r in commands],
        ping_ms={'count': len(ping_ms),
                 'median': round(statistics.median(ping_ms), 3),
                 'max': round(max(ping_ms), 3)} if ping_ms else {})
    return out


def render_channel(report: dict[str, Any]) -> str:
    """``Channel: ...`` line of a report."""
    if report['transport'] is None:
        return 'Channel: none (%s)' % report['reason']
    if report['transport'] == 'socket':
        return 'Channel: %s, socket %s' % (report['channel'], report['path'])
    return 'Channel: %s, through libvirt' % report['channel']


def render(report: dict[str, Any]) -> str:
    """Human-readable text of a one-guest report."""
    inst = report['instance']
    lines = []
    if inst['instance_id'] != 'probe':
        lines.append('Instance: %s' % describe_guest(Guest(**inst)))
    lines.append(render_channel(report))
    if report.get('state') != 'ok' or 'meters' not in report:
        lines.append('State: %s (%s)' % (report.get('state'),
                                         report.get('error') or '-'))
        return '\n'.join(lines)
    lines.append('State: ok, guest-ping %.3f ms' % report['latency_ms'])
    lines.append('Agent version: %s' % report['agent_version'])
    for key, value in sorted(report['facts'].items()):
        lines.append('  %-16s %s' % (key, value))
    lines.append('Enabled commands (%d): %s' % (len(report['enabled']),
                                                ', '.join(report['enabled'])))
    lines.append('Disabled commands (%d): %s'
                 % (len(report['disabled']), ', '.join(report['disabled'])))
    lines.append('')
    rows = [(m['meter'], m['item'] if m['item'] is not None
             else '(instance)', _fmt(m['value']), m['unit'], m['via'])
            for m in report['meters']]
    lines.append(table(('meter', 'resource', 'value', 'unit', 'via'), rows,
                       right=(2,)))
    for name, reason in sorted(report['skipped'].items()):
        lines.append('skipped %s: %s' % (name, reason))
    for name, reasons in sorted(report['dropped'].items()):
        for reason in reasons:
            lines.append('dropped by %s: %s' % (name, reason))
    lines.append('')
    lines.append(table(('command', 'ms', 'outcome'),
                       [(c['command'], '%.3f' % c['ms'], c['outcome'])
                        for c in report['commands']], right=(1,)))
    if report['ping_ms']:
        p = report['ping_ms']
        lines.append('guest-ping x%d: median %.3f ms, max %.3f ms'
                     % (p['count'], p['median'], p['max']))
    return '\n'.join(lines)


# -- every guest -------------------------------------------------------------

def sort_key(row: dict[str, Any]) -> tuple:
    """Unhealthy first, then legacy, then ok; by name within each."""
    rank = {'ok': 2, LEGACY: 1}.get(row['state'], 0)
    return (rank, row['display_name'] or row['name'], row['instance_id'])


async def probe_all(conf: cfg.ConfigOpts) -> dict[str, Any]:
    """One sweep of the poller's engine over every guest; one row each.

    Returns ``{'guests': [row, ...], 'sweep_s': seconds}``, the rows sorted
    by :func:`sort_key`.

    :raises UsageError: the discovery cannot be built or cannot answer
    """
    # Discovered here rather than by the poller, which would only log a
    # failure: the probe must say that it could not tell.
    guests = await asyncio.to_thread(discover, conf)
    poller = poller_mod.Poller(conf, load_collectors(conf),
                               intervals=schedule.EVERY_SWEEP)
    try:
        result = await poller.sweep(guests)
        rows = []
        for report in result.reports:
            row = guest_fields(report.guest)
            row.update(channel_of(report))
            state, error = report.state, report.error
            row.update(
                state=state,
                error=error,
                agent_version=report.facts.get('agent_version'),
                latency_ms=(round(report.latency_ms, 3)
                            if report.latency_ms is not None else None),
                meters=meter_counts(report))
            rows.append(row)
    finally:
        await poller.close()
    return {'guests': sorted(rows, key=sort_key),
            'sweep_s': round(result.duration, 3)}


def render_all(found: dict[str, Any]) -> str:
    """The ``--all`` table: one line per guest, then the problems."""
    rows = found['guests']
    if not rows:
        return 'No guests found.'
    lines = [table(
        ('instance', 'name', 'domain', 'state', 'version', 'ping ms',
         'transport', 'native/fallback'),
        [(r['instance_id'], r['display_name'] or '-', r['name'], r['state'],
          r['agent_version'] or '-',
          '%.3f' % r['latency_ms'] if r['latency_ms'] is not None else '-',
          _transport_cell(r),
          '%d/%d' % (r['meters']['native'], r['meters']['fallback'])
          if r['state'] == 'ok' or r['latency_ms'] is not None else '-')
         for r in rows], right=(5,))]
    lines.append('%d guests, %d ok, swept in %.2f s'
                 % (len(rows), sum(r['state'] == 'ok' for r in rows),
                    found['sweep_s']))
    problems = [r for r in rows if r['error'] and r['state'] != 'ok']
    if problems:
        lines.append('')
        lines += ['%s: %s' % (r['display_name'] or r['name'], r['error'])
                  for r in problems]
    return '\n'.join(lines)


def _transport_cell(row: dict[str, Any]) -> str:
    if row['transport'] is None:
        return '-'
    if row['transport'] == 'socket':
        return 'socket (%s)' % row['channel']
    return 'libvirt (%s)' % row['channel']


# -- output helpers ----------------------------------------------------------

def table(headers: tuple[str, ...], rows: list[tuple[str, ...]],
          right: tuple[int, ...] = ()) -> str:
    """A plain-text table; columns listed in ``right`` are right-aligned."""
    widths = [max([len(h)] + [len(r[i]) for r in rows])
              for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        return '  '.join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))
                         ).rstrip()
    return '\n'.join([line(headers), '  '.join('-' * w for w in widths)]
                     + [line(r) for r in rows])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return '%.3f' % value
    return str(value)


def run(conf: cfg.ConfigOpts) -> int:
    """Do what the parsed command line asks; print; return the exit code."""
    if conf.all:
        found = asyncio.run(probe_all(conf))
        print(json.dumps(found, indent=2, sort_keys=True) if conf.json
              else render_all(found))
        healthy = all(r['state'] in HEALTHY_STATES for r in found['guests'])
        return EXIT_OK if healthy else EXIT_UNHEALTHY
    if conf.socket:
        guest = socket_guest(conf, conf.socket)
    else:
        guest = resolve(conf, conf.instance)
    pings = number_arg('--pings', conf.pings, int, 0, MAX_PINGS)
    report = asyncio.run(probe_guest(conf, guest, pings))
    print(json.dumps(report, indent=2, sort_keys=True) if conf.json
          else render(report))
    return EXIT_OK if report.get('state') == 'ok' else EXIT_UNHEALTHY


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``qga-probe``."""
    try:
        conf = prepare(sys.argv[1:] if argv is None else argv)
        return run(conf)
    except (UsageError, cfg.Error) as exc:
        print('qga-probe: %s' % exc, file=sys.stderr)
        return EXIT_USAGE


if __name__ == '__main__':
    sys.exit(main())
