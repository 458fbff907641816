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

The HTTP server (``prometheus_client``'s, optionally with TLS) starts with
the first sweep, in the process that sweeps: ``qga-polling`` builds its
pipeline before it forks, and a thread does not survive a fork.  The
address is checked when the observer is built, so that a port in use is one
error naming the option before anything else starts.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
import prometheus_client
from prometheus_client import core as prom_core

from ceilometer_qga.observers import SweepObserver

LOG = logging.getLogger(__name__)

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
INFO_LABELS = ('project', 'user', 'resource', 'vm_instance', 'resource_name',
               'state', 'version', 'channel', 'transport')


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register ``[prometheus_exporter]`` on ``conf`` (idempotent)."""
    conf.register_opts(OPTS, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options for ``oslo-config-generator``."""
    return [(GROUP, OPTS)]


def metric_name(meter: str) -> str:
    """Ceilometer's exporter's name of ``meter``."""
    return 'ceilometer_' + meter.replace('.', '_')


class Exposition:
    """One sweep's series, ready to be turned into metric families.

    Kept as plain tuples (name -> kind, label names, [(label values,
    value)]): the sweep's cost is one tuple per sample; the families are
    built when Prometheus scrapes, in the HTTP server's thread.
    """

    def __init__(self) -> None:
        self.series: dict[str, tuple[str, tuple[str, ...],
                                     list[tuple[tuple[str, ...], float]]]] = {}
        self.info: list[tuple[str, ...]] = []
        self.poller: dict[str, Any] = {}
        #: instance -> [(meter, row)]: what a later sweep may carry over
        self.by_instance: dict[str, list[tuple[str, Any]]] = {}

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

    def families(self) -> list[prom_core.Metric]:
        """The metric families of this exposition."""
        out: list[prom_core.Metric] = []
        for name, (kind, names, rows) in self.series.items():
            family_class = (prom_core.CounterMetricFamily if kind == 'counter'
                            else prom_core.GaugeMetricFamily)
            family = family_class(metric_name(name),
                                  'qga-monitor meter %s' % name,
                                  labels=names)
            for values, value in rows:
                family.add_metric(values, value)
            out.append(family)
        if self.info:
            info = prom_core.GaugeMetricFamily(
                'ceilometer_guest_agent_info',
                'The guest agent: state and version in the last sweep '
                '(always 1)', labels=INFO_LABELS)
            for values in self.info:
                info.add_metric(values, 1)
            out.append(info)
        if self.poller:
            out.append(prom_core.GaugeMetricFamily(
                'qga_polling_last_sweep_timestamp_seconds',
                'When the last sweep ended (Unix time)',
                value=self.poller['timestamp']))
            out.append(prom_core.GaugeMetricFamily(
                'qga_polling_last_sweep_duration_seconds',
                'How long the last sweep took',
                value=self.poller['duration']))
            out.append(prom_core.GaugeMetricFamily(
                'qga_polling_samples', 'Samples of the last sweep',
                value=self.poller['samples']))
            guests = prom_core.GaugeMetricFamily(
                'qga_polling_guests', 'Guests of the last sweep by agent '
                'state', labels=('state',))
            for state, count in sorted(self.poller['states'].items()):
                guests.add_metric((state,), count)
            out.append(guests)
        return out


def _text(value: Any) -> str:
    return '' if value is None else str(value)


def _identity(sample: Any, md: dict[str, Any]) -> tuple[str, ...]:
    """(project, user, vm_instance, resource_name, server_group,
    flavor_id, flavor_name) of a guest, as Ceilometer's exporter labels
    them."""
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
    """A ``prometheus_client`` collector over the latest exposition."""

    def __init__(self, meters_of: dict[str, frozenset[str]] | None = None,
                 ) -> None:
        self.exposition = Exposition()
        self.meters_of = meters_of or {}

    def update(self, result: Any) -> None:
        """Take a new sweep (its rows, and what it carries over)."""
        self.exposition = Exposition.of_sweep(
            result, time.time(), self.exposition, self.meters_of)

    def collect(self) -> list[prom_core.Metric]:
        return self.exposition.families()


class PrometheusExporter(SweepObserver):
    """The ``/metrics`` endpoint of ``qga-polling`` (module docstring)."""

    @classmethod
    def enabled(cls, conf: cfg.ConfigOpts) -> bool:
        register_opts(conf)
        return conf[GROUP].enabled

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        register_opts(conf)
        group = conf[GROUP]
        self.address = group.listen_address
        self.port = group.port
        self.certfile, self.keyfile = group.tls_certfile, group.tls_keyfile
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
        self.registry = prometheus_client.CollectorRegistry(
            auto_describe=False)
        self.registry.register(self._collector)  # type: ignore[arg-type]
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
            try:
                self._server, _thread = prometheus_client.start_http_server(
                    self.port, addr=self.address, registry=self.registry,
                    certfile=self.certfile, keyfile=self.keyfile)
            except OSError as exc:
                # Checked at start; taken since by another process.
                LOG.error('[%s] port = %d: cannot listen on %s: %s; the '
                          'exporter is off', GROUP, self.port, self.address,
                          exc)
                self._server = False
                return
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
    known by (entry point and class)."""
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
