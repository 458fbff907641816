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

"""Serve each sweep's guest metrics on ``/metrics`` for Prometheus.

A sweep observer (:mod:`ceilometer_qga.observers`): the values are the
samples of the sweep that is also published on the bus, never a second
poll.  Each sweep replaces the whole exposition (:class:`Exposition`), so
the series of an instance that went away, or of a mountpoint, disk or
interface that disappeared, are gone at the next sweep and memory is bounded
by one sweep whatever the churn.

Names and labels follow Ceilometer's own exporter
(``ceilometer/polling/prom_exporter.py`` of Ceilometer 27, which
``[polling] enable_prometheus_exporter`` turns on inside
``ceilometer-polling``): ``ceilometer_<meter with dots as underscores>``
and its label names (``project``, ``user``, ``resource``, ``vm_instance``,
``resource_name``, ``flavor_id``, ``flavor_name``, ...), so that Aetos and
python-observabilityclient scope our series by ``project`` like every other
OpenStack metric.  Two differences, both what a Prometheus user expects:

* the item of a per-item meter is a label of its own -- ``mountpoint``,
  ``fstype``, ``device`` (filesystems), ``disk`` (disks), ``interface``
  (network) -- instead of being only inside the escaped resource id;
* cumulative meters are counters (exposed with the ``_total`` suffix, as
  the Prometheus client library names every counter); Ceilometer's
  exporter shows every meter as a gauge.

Besides the meters: ``ceilometer_guest_agent_info`` (value 1, labels
``state``, ``version``, ``channel``, ``transport`` with the identity
labels) per guest with an agent channel, and the poller's own
``qga_polling_last_sweep_timestamp_seconds``,
``qga_polling_last_sweep_duration_seconds``, ``qga_polling_guests``
(by ``state``) and ``qga_polling_samples``.

The HTTP server (the standard library's, optionally with TLS) serves the
text made once per sweep, whatever the scrape rate, and starts with the
first sweep, in the process that sweeps: ``qga-polling`` builds its
pipeline before it forks, and a thread does not survive a fork.  The
address is checked when the observer is built, so that a port in use is one
error naming the option before anything else starts.
"""

from __future__ import annotations

import gzip
import http.server
import os
import socket
import ssl
import threading
import time
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
import prometheus_client

from ceilometer_qga.observers import SweepObserver

LOG = logging.getLogger(__name__)

#: this observer's group, and its entry point's name
GROUP = 'prometheus_exporter'

OPTS = [
    cfg.BoolOpt('enabled',
                default=False,
                help='Serve the guests\' metrics of every sweep on '
                     'http(s)://listen_address:port/metrics for '
                     'Prometheus, named and labelled as Ceilometer\'s own '
                     'exporter names them, plus mountpoint, fstype, device, '
                     'disk and interface labels. Values come from the sweep '
                     'that is published, never from a second poll.'),
    cfg.HostAddressOpt('listen_address',
                       default='127.0.0.1',
                       help='Address the exporter listens on.'),
    cfg.PortOpt('port',
                default=9109,
                help='TCP port the exporter listens on.'),
    cfg.StrOpt('tls_certfile',
               help='PEM certificate: with tls_keyfile, the exporter '
                    'serves HTTPS only (as Ceilometer\'s '
                    '[polling] prometheus_tls_certfile).'),
    cfg.StrOpt('tls_keyfile',
               help='PEM private key of tls_certfile.'),
]

#: label names every guest meter carries (Ceilometer's exporter's names;
#: ``guest`` is its label named after the meter's first part, whose value
#: is the meter's last part)
BASE_LABELS = ('guest', 'publisher', 'type', 'counter', 'project', 'user',
               'unit', 'resource', 'vm_instance', 'resource_name',
               'server_group', 'flavor_id', 'flavor_name')
#: the item labels of each group of meters: label -> sample metadata key
ITEM_LABELS = {
    'filesystem': (('mountpoint', 'mountpoint'), ('fstype', 'fstype'),
                   ('device', 'device')),
    'disk': (('disk', 'disk_name'),),
    'network': (('interface', 'vnic_name'),),
}
#: where the guest-identity labels start and the item labels start
_SHARED = BASE_LABELS.index('vm_instance')
_ITEMS = len(BASE_LABELS)
#: the labels that are the same on every sample of one guest
_GUEST_LABELS = ('project', 'user') + BASE_LABELS[_SHARED:]
INFO_LABELS = ('project', 'user', 'resource', 'vm_instance', 'resource_name',
               'state', 'version', 'channel', 'transport')


def metric_name(meter: str) -> str:
    """Ceilometer's exporter's name of ``meter``."""
    return 'ceilometer_' + meter.replace('.', '_')


class Exposition:
    """One sweep's series, ready to be turned into metric families.

    Kept as plain tuples (name -> kind, label names, [(label values,
    value)]): the sweep's cost is one tuple per sample; the text is made
    at the first scrape after the sweep, in the HTTP server's thread.
    """

    def __init__(self) -> None:
        self.series: dict[str, tuple[str, tuple[str, ...],
                                     list[tuple[tuple[str, ...], float]]]] = {}
        self.info: list[tuple[str, ...]] = []
        self.poller: dict[str, Any] = {}
        #: instance -> [(meter, row)]: what a later sweep may carry over
        self.by_instance: dict[str, list[tuple[str, Any]]] = {}
        self._text: bytes | None = None
        self._gzipped: bytes | None = None

    @classmethod
    def of_sweep(cls, result: Any, now: float,
                 previous: Exposition | None = None,
                 meters_of: dict[str, frozenset[str]] | None = None,
                 ) -> Exposition:
        """Build the exposition of one :class:`~ceilometer_qga.poller.
        SweepResult`.

        A collector that was not due on a guest in this sweep
        (``not_due``: filesystems and vCPUs are read every 300 s by
        default) left its meters out of the sweep, not because they went
        away: their rows are carried over from ``previous``, so that a
        per-mountpoint series does not break between two reads.  A guest
        that is gone, or whose collector ran and no longer found an item,
        keeps nothing.

        :param meters_of: collector name (as in the reports' outcomes) ->
            the names of its meters
        """
        exposition = cls()
        by_instance = exposition.by_instance
        series = exposition.series
        base_of: dict[str, tuple[str, ...]] = {}
        #: meter -> (rows, constant label values, item metadata keys)
        meters: dict[str, tuple[list[Any], tuple[str, ...],
                                tuple[str, ...]]] = {}
        for sample in result.samples:
            md = sample.resource_metadata
            instance = md.get('instance_id') or sample.resource_id
            base = base_of.get(instance)
            if base is None:
                base = base_of[instance] = _identity(sample, md)
            meter = meters.get(sample.name)
            if meter is None:
                parts = sample.name.split('.')
                group = parts[1] if len(parts) > 1 else parts[0]
                items = ITEM_LABELS.get(group, ())
                rows: list[Any] = []
                series[sample.name] = (
                    'counter' if sample.type == 'cumulative' else 'gauge',
                    BASE_LABELS + tuple(label for label, _ in items), rows)
                meter = meters[sample.name] = (
                    rows, (parts[-1], 'ceilometer', group, sample.name),
                    tuple(key for _, key in items))
            rows, constant, item_keys = meter
            values = constant + (base[0], base[1], sample.unit or '',
                                 sample.resource_id) + base[2:]
            if item_keys:
                values += tuple(_text(md.get(key)) for key in item_keys)
            row = (values, sample.volume)
            rows.append(row)
            mine = by_instance.get(instance)
            if mine is None:
                mine = by_instance[instance] = []
            mine.append((sample.name, row))
            if sample.name == 'guest.agent.up':
                exposition.info.append(
                    (base[0], base[1], sample.resource_id, base[2], base[3],
                     _text(md.get('agent_state')),
                     _text(md.get('agent_version')), '', ''))
        if previous is not None and meters_of:
            exposition._carry_over(result.reports, previous, meters_of)
        channels = {}
        states: dict[str, int] = {}
        for report in result.reports:
            states[report.state] = states.get(report.state, 0) + 1
            channel = getattr(report, 'channel', None)
            transport = getattr(report, 'transport_kind', None)
            channels[report.guest.instance_id] = (
                _text(getattr(channel, 'target_name', channel)),
                _text(transport))
        if channels:
            exposition.info = [
                row[:7] + channels.get(row[2], ('', '')) for row in
                exposition.info]
        exposition.poller = {'timestamp': now, 'duration': result.duration,
                             'states': states,
                             'samples': len(result.samples)}
        return exposition

    def _carry_over(self, reports: Any, previous: Exposition,
                    meters_of: dict[str, frozenset[str]]) -> None:
        for report in reports:
            skipped = [o.name for o in report.outcomes
                       if o.source == 'not_due']
            if not skipped:
                continue
            instance = report.guest.instance_id
            old_rows = previous.by_instance.get(instance)
            if not old_rows:
                continue
            carried = frozenset().union(*(meters_of.get(name, frozenset())
                                          for name in skipped))
            mine = self.by_instance.setdefault(instance, [])
            present = {meter for meter, _ in mine}
            for meter, row in old_rows:
                if meter not in carried or meter in present:
                    continue
                entry = self.series.get(meter)
                if entry is None:
                    kind, names, _rows = previous.series[meter]
                    entry = self.series[meter] = (kind, names, [])
                entry[2].append(row)
                mine.append((meter, row))

    def render(self) -> bytes:
        """The text exposition (format 0.0.4) of this sweep, made once.

        Written here rather than by ``prometheus_client``'s
        ``generate_latest``, which builds an object per sample and formats
        its labels each time; here the labels a guest's samples share are
        formatted once per guest and meter.  The output is the same format
        (the tests read it back with ``prometheus_client``'s parser).
        """
        if self._text is not None:
            return self._text
        out: list[str] = []
        guest_part: dict[tuple[str, ...], str] = {}
        for meter, (kind, names, rows) in self.series.items():
            name = metric_name(meter) + ('_total' if kind == 'counter'
                                         else '')
            out.append('# HELP %s qga-monitor meter %s\n# TYPE %s %s\n'
                       % (name, meter, name, kind))
            # values: guest, publisher, type, counter (the meter's), project,
            # user (the guest's), unit (the meter's), resource (the
            # sample's), the guest's identity, then the items.  What a
            # meter or a guest shares is formatted once.
            items = names[_ITEMS:]
            for values, value in rows:
                shared = values[4:6] + values[_SHARED:_ITEMS]
                guest = guest_part.get(shared)
                if guest is None:
                    guest = guest_part[shared] = ','.join(
                        '%s="%s"' % (k, _escape(v)) for k, v in
                        zip(_GUEST_LABELS, shared))
                line = '%s{guest="%s",publisher="%s",type="%s",counter="%s",' \
                    'unit="%s",resource="%s",%s' % (
                        name, values[0], values[1], values[2], values[3],
                        _escape(values[6]), _escape(values[7]), guest)
                if items:
                    line += ''.join(',%s="%s"' % (k, _escape(v)) for k, v in
                                    zip(items, values[_ITEMS:]))
                out.append('%s} %s\n' % (line, _number(value)))
        if self.info:
            name = 'ceilometer_guest_agent_info'
            out.append('# HELP %s The guest agent: state and version in the '
                       'last sweep (always 1)\n# TYPE %s gauge\n'
                       % (name, name))
            for values in self.info:
                out.append('%s{%s} 1.0\n' % (name, ','.join(
                    '%s="%s"' % (k, _escape(v))
                    for k, v in zip(INFO_LABELS, values))))
        if self.poller:
            for name, text, value in (
                    ('qga_polling_last_sweep_timestamp_seconds',
                     'When the last sweep ended (Unix time)',
                     self.poller['timestamp']),
                    ('qga_polling_last_sweep_duration_seconds',
                     'How long the last sweep took', self.poller['duration']),
                    ('qga_polling_samples', 'Samples of the last sweep',
                     self.poller['samples'])):
                out.append('# HELP %s %s\n# TYPE %s gauge\n%s %s\n' % (
                    name, text, name, name, _number(value)))
            out.append('# HELP qga_polling_guests Guests of the last sweep '
                       'by agent state\n# TYPE qga_polling_guests gauge\n')
            for state, count in sorted(self.poller['states'].items()):
                out.append('qga_polling_guests{state="%s"} %s\n'
                           % (_escape(state), _number(count)))
        self._text = ''.join(out).encode('utf-8', 'replace')
        return self._text

    def gzipped(self) -> bytes:
        """:meth:`render`, gzipped once (Prometheus asks for gzip)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.render(), compresslevel=1)
        return self._gzipped


_ESCAPES = str.maketrans({'\\': '\\\\', '"': '\\"', '\n': '\\n'})


def _escape(value: str) -> str:
    """A label value as the text format wants it (guests choose some)."""
    if '\\' in value or '"' in value or '\n' in value:
        return value.translate(_ESCAPES)
    return value


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return '1.0' if value else '0.0'
    if isinstance(value, int):
        return '%d.0' % value if abs(value) < 2 ** 53 else repr(float(value))
    return repr(float(value))


def _text(value: Any) -> str:
    return '' if value is None else str(value)


def _identity(sample: Any, md: dict[str, Any]) -> tuple[str, ...]:
    """(project, user, vm_instance, resource_name, server_group,
    flavor_id, flavor_name) of a guest, as Ceilometer's exporter labels
    them.
    """
    display, name = md.get('display_name'), md.get('name')
    resource_name = (':'.join((display, name)) if display and name
                     else display or name or '')
    flavor = md.get('flavor') if isinstance(md.get('flavor'), dict) else {}
    user_md = md.get('user_metadata')
    group = (user_md.get('server_group') if isinstance(user_md, dict)
             else None)
    return (_text(sample.project_id), _text(sample.user_id),
            _text(md.get('host')), _text(resource_name),
            _text(group) or 'none', _text(flavor.get('id')),
            _text(flavor.get('name')))


class _Collector:
    """The latest exposition, and the carry-over between sweeps."""

    def __init__(self, meters_of: dict[str, frozenset[str]] | None = None,
                 ) -> None:
        self.exposition = Exposition()
        self.meters_of = meters_of or {}

    def update(self, result: Any) -> None:
        """Take a new sweep (its rows, and what it carries over)."""
        self.exposition = Exposition.of_sweep(
            result, time.time(), self.exposition, self.meters_of)


class _Handler(http.server.BaseHTTPRequestHandler):
    """``GET /metrics``: the latest exposition, gzipped when asked."""

    collector: _Collector

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.split('?')[0] not in ('/metrics', '/'):
            self.send_error(404)
            return
        exposition = self.collector.exposition
        body = exposition.render()
        gzipped = 'gzip' in self.headers.get('Accept-Encoding', '')
        if gzipped:
            body = exposition.gzipped()
        self.send_response(200)
        self.send_header('Content-Type', prometheus_client.CONTENT_TYPE_LATEST)
        self.send_header('Content-Length', str(len(body)))
        if gzipped:
            self.send_header('Content-Encoding', 'gzip')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one a few seconds)."""


class PrometheusExporter(SweepObserver):
    """The ``/metrics`` endpoint of ``qga-polling`` (module docstring)."""

    CONFIG_OPTS = OPTS

    def __init__(self, conf: cfg.ConfigOpts, opts: Any) -> None:
        super().__init__(conf, opts)
        self.address = opts.listen_address
        self.port = opts.port
        self.certfile, self.keyfile = opts.tls_certfile, opts.tls_keyfile
        if bool(self.certfile) != bool(self.keyfile):
            raise ValueError('[%s] tls_certfile and tls_keyfile: give both '
                             'or neither' % GROUP)
        for option, path in (('tls_certfile', self.certfile),
                             ('tls_keyfile', self.keyfile)):
            if path and not os.access(path, os.R_OK):
                raise ValueError('[%s] %s = %s: not a readable file'
                                 % (GROUP, option, path))
        _check_bind(self.address, self.port)
        self._collector = _Collector(_meters_of(conf))
        self._server: Any = None
        self._lock = threading.Lock()

    def sweep_done(self, result: Any) -> None:
        self._collector.update(result)
        if self._server is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            handler = type('Handler', (_Handler,),
                           {'collector': self._collector})
            server_class = type('Server', (http.server.ThreadingHTTPServer,),
                                {'address_family': socket.AF_INET6
                                 if ':' in self.address else socket.AF_INET,
                                 'daemon_threads': True})
            try:
                server = server_class((self.address, self.port), handler)
                if self.certfile:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    context.load_cert_chain(self.certfile, self.keyfile)
                    server.socket = context.wrap_socket(server.socket,
                                                        server_side=True)
            except (OSError, ssl.SSLError) as exc:
                # Checked at start; taken since by another process.
                LOG.error('[%s] port = %d: cannot serve on %s: %s; the '
                          'exporter is off', GROUP, self.port, self.address,
                          exc)
                self._server = False
                return
            threading.Thread(target=server.serve_forever, daemon=True,
                             name='prometheus-exporter').start()
            self._server = server
            LOG.info('Prometheus exporter on %s://%s:%d/metrics',
                     'https' if self.certfile else 'http', self.address,
                     self.port)

    def close(self) -> None:
        server, self._server = self._server, None
        if server:
            server.shutdown()
            server.server_close()


def _meters_of(conf: cfg.ConfigOpts) -> dict[str, frozenset[str]]:
    """Collector name -> its meter names, under both names a collector is
    known by (entry point and class).
    """
    from ceilometer_qga.collectors import load_collectors
    collectors = load_collectors(conf)
    out = {}
    for name, collector in zip(conf.qga_polling.collectors, collectors):
        meters = frozenset(m.name for m in collector.meters)
        out[name] = out[type(collector).__name__] = meters
    return out


def _check_bind(address: str, port: int) -> None:
    """Fail with the option's name when ``address:port`` cannot be bound."""
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address, port))
    except OSError as exc:
        raise ValueError('[%s] listen_address = %s, port = %d: cannot '
                         'listen there: %s'
                         % (GROUP, address, port, exc.strerror or exc))
    finally:
        probe.close()
