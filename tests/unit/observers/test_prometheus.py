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

"""The Prometheus exposition of a sweep: names, labels, types, churn."""

from __future__ import annotations

import dataclasses
import gc
import socket
import tracemalloc

from oslo_config import cfg
import prometheus_client
from prometheus_client.parser import text_string_to_metric_families
import pytest

from ceilometer_qga.guest import Guest
from ceilometer_qga import observers
from ceilometer_qga.observers import prometheus
from ceilometer_qga import plugins
from ceilometer_qga.report import GuestReport
from ceilometer_qga.sample import Sample


@dataclasses.dataclass
class Result:
    """The fields of a ``poller.SweepResult`` the exporter reads."""

    reports: list
    samples: list
    duration: float = 0.5


def guest_samples(uuid, mounts=('/',), state='ok'):
    md = {'instance_id': uuid, 'name': 'instance-' + uuid[:4],
          'display_name': 'vm-' + uuid[:4], 'host': 'compute-1',
          'flavor': {'id': 'f1', 'name': 'm1.small'},
          'agent_version': '7.2.0'}

    def sample(name, kind, unit, volume, rid=uuid, **extra):
        return Sample(name, kind, unit, volume, 'user-1', 'project-1', rid,
                      '2026-12-05T00:00:00', dict(md, **extra))
    out = [sample('guest.agent.up', 'gauge', 'agent', 1, agent_state=state),
           sample('guest.cpu.time', 'cumulative', 'ns', 123)]
    for mount in mounts:
        rid = uuid + '-' + mount.replace('/', '_2F')
        out.append(sample('guest.filesystem.usage', 'gauge', '%', 40.0,
                          rid=rid, mountpoint=mount, fstype='ext4',
                          device='vda1'))
    out.append(sample('guest.network.incoming.bytes', 'cumulative', 'B', 9,
                      rid=uuid + '-eth0', vnic_name='eth0'))
    return out


def sweep(uuids, **kwargs):
    reports = [GuestReport(Guest(u, 'instance-' + u[:4])) for u in uuids]
    samples = [s for u in uuids for s in guest_samples(u, **kwargs)]
    return Result(reports, samples)


def text_of(exposition):
    """The exposition's text, checked by ``prometheus_client``'s parser."""
    text = exposition.render().decode()
    list(text_string_to_metric_families(text))  # raises on bad syntax
    return text


def series(text, prefix):
    return [line for line in text.splitlines()
            if line.startswith(prefix) and not line.startswith('#')]


def test_names_labels_and_types_follow_ceilometer_plus_items():
    uuid = '11111111-1111-4111-8111-111111111111'
    text = text_of(prometheus.Exposition.of_sweep(
        sweep([uuid], mounts=('/', '/data')), 1e9))
    [root, data] = series(text, 'ceilometer_guest_filesystem_usage{')
    for line, mount in ((root, '/'), (data, '/data')):
        assert 'mountpoint="%s"' % mount in line
        assert 'fstype="ext4"' in line and 'device="vda1"' in line
        assert 'project="project-1"' in line and 'user="user-1"' in line
        assert 'vm_instance="compute-1"' in line
        assert 'resource_name="vm-1111:instance-1111"' in line
        assert 'flavor_name="m1.small"' in line
        assert 'counter="guest.filesystem.usage"' in line
    assert '# TYPE ceilometer_guest_cpu_time_total counter' in text
    assert series(text, 'ceilometer_guest_cpu_time_total{')
    assert '# TYPE ceilometer_guest_filesystem_usage gauge' in text
    [net] = series(text, 'ceilometer_guest_network_incoming_bytes_total{')
    assert 'interface="eth0"' in net
    [info] = series(text, 'ceilometer_guest_agent_info{')
    assert 'state="ok"' in info and 'version="7.2.0"' in info
    assert series(text, 'qga_polling_guests{state="ok"} 1.0')
    assert series(text, 'qga_polling_last_sweep_duration_seconds 0.5')


def test_a_vanished_guest_or_mountpoint_leaves_no_series():
    a, b = ('%08d-1111-4111-8111-111111111111' % i for i in (1, 2))
    first = text_of(prometheus.Exposition.of_sweep(
        sweep([a, b], mounts=('/', '/data')), 1.0))
    assert 'mountpoint="/data"' in first and b in first
    second = text_of(prometheus.Exposition.of_sweep(
        sweep([a], mounts=('/',)), 2.0))
    assert 'mountpoint="/data"' not in second and b not in second


def test_churn_of_1000_guests_over_20_sweeps_leaves_nothing_behind():
    """Memory is one sweep's: after 20 sweeps of 1,000 new guests each,
    an empty sweep exposes no guest series and holds nothing of theirs.
    """
    exporter = prometheus._Collector()
    tracemalloc.start()
    try:
        for n in range(20):
            uuids = ['%08d-%04d-4111-8111-111111111111' % (i, n)
                     for i in range(1000)]
            exporter.exposition = prometheus.Exposition.of_sweep(
                sweep(uuids), float(n))
            text = exporter.exposition.render()
            assert text.count(b'\nceilometer_guest_') >= 1000 * 5
        exporter.exposition = prometheus.Exposition.of_sweep(
            Result([], []), 21.0)
        del text, uuids
        gc.collect()
        left, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    families = list(text_string_to_metric_families(
        exporter.exposition.render().decode()))
    assert {f.name for f in families} == {
        'qga_polling_last_sweep_timestamp_seconds',
        'qga_polling_last_sweep_duration_seconds', 'qga_polling_samples',
        'qga_polling_guests'}
    assert left < 1024 * 1024, left


def _conf(**overrides):
    """The exporter's own group, with ``overrides``, as the loader hands it."""
    conf = cfg.ConfigOpts()
    group = plugins.register(conf, prometheus.GROUP, prometheus.OPTS)
    conf([], project='qga-monitor', default_config_files=[],
         default_config_dirs=[])
    for name, value in overrides.items():
        conf.set_override(name, value, prometheus.GROUP)
    return conf, group


def test_a_port_in_use_is_one_error_naming_the_option():
    busy = socket.socket()
    busy.bind(('127.0.0.1', 0))
    busy.listen(1)
    try:
        conf, group = _conf(enabled=True, port=busy.getsockname()[1])
        with pytest.raises(ValueError) as exc:
            prometheus.PrometheusExporter(conf, group)
    finally:
        busy.close()
    assert str(exc.value).startswith('[prometheus_exporter] listen_address')


def test_half_a_tls_pair_is_refused():
    with pytest.raises(ValueError, match='tls_certfile and tls_keyfile'):
        prometheus.PrometheusExporter(*_conf(tls_certfile='/etc/hostname'))


def test_off_by_default():
    assert not prometheus.PrometheusExporter.enabled(_conf()[1])


def test_the_loader_hands_each_observer_its_group():
    """Registered by the loader in the group the entry point is named
    after; off by default, so none is built.
    """
    conf = cfg.ConfigOpts()
    conf([], project='qga-monitor', default_config_files=[],
         default_config_dirs=[])
    assert observers.load_observers(conf) == []
    assert conf.prometheus_exporter.port == 9109
    assert conf.guest_agent_events.enabled is False


def test_meters_of_a_collector_not_due_are_carried_over_until_it_runs():
    """Filesystems are read every 300 s: between two reads their series
    stay (carried from the last read); a read that misses a mountpoint,
    or a guest that is gone, drops them.
    """
    from ceilometer_qga.collectors.base import ParseResult
    from ceilometer_qga.report import CollectorOutcome
    uuid = '77777777-1111-4111-8111-111111111111'
    fs = frozenset({'guest.filesystem.usage'})
    collector = prometheus._Collector({'filesystem': fs})

    def result(mounts, source):
        res = sweep([uuid], mounts=mounts)
        res.reports[0].outcomes.append(
            CollectorOutcome('filesystem', source, ParseResult()))
        if source == 'not_due':
            res.samples = [s for s in res.samples
                           if s.name not in fs]
        return res

    def mounts_exposed():
        return sorted(v[-3] for v, _ in collector.exposition.series.get(
            'guest.filesystem.usage', ('', (), []))[2])
    collector.update(result(('/', '/data'), 'native'))
    assert mounts_exposed() == ['/', '/data']
    collector.update(result((), 'not_due'))
    collector.update(result((), 'not_due'))
    assert mounts_exposed() == ['/', '/data']
    collector.update(result(('/',), 'native'))
    assert mounts_exposed() == ['/']
    collector.update(Result([], []))
    assert mounts_exposed() == []


def test_what_ceilometers_own_exporter_shows_for_our_meters():
    """Plugin mode: inside ``ceilometer-polling`` with ``[polling]
    enable_prometheus_exporter``, Ceilometer 27's own exporter
    (``ceilometer.polling.prom_exporter``, run here on our samples as the
    polling manager hands them over) exposes every meter as a gauge with
    no item label: ``/`` and ``/data`` are told apart only by the resource
    id, which carries the escaped mountpoint (``<uuid>-_2Fdata``), and by
    nothing else -- hence the item labels of our own exporter.
    """
    from ceilometer.polling import prom_exporter
    from ceilometer_qga import sample as sample_mod

    uuid = '88888888-1111-4111-8111-111111111111'
    messages = [sample_mod.to_message(s, None) for s in
                guest_samples(uuid, mounts=('/', '/data'))]
    for name in ('guest.filesystem.usage', 'guest.cpu.time'):
        prom_exporter.purge_stale_metrics(name)
    prom_exporter.collect_metrics(messages)
    text = prometheus_client.generate_latest(
        prom_exporter.CEILOMETER_REGISTRY).decode()
    usage = series(text, 'ceilometer_guest_filesystem_usage{')
    assert sorted(line.split('resource="')[1].split('"')[0]
                  for line in usage) == [uuid + '-_2F', uuid + '-_2Fdata']
    assert not any('mountpoint=' in line for line in usage)
    assert all('resource_name="vm-8888:instance-8888"' in line
               and 'project="project-1"' in line for line in usage)
    assert '# TYPE ceilometer_guest_cpu_time gauge' in text


def test_label_values_a_guest_chooses_are_escaped():
    """A mountpoint with a quote, a backslash and a newline (a guest can
    name its mounts so) stays one label value.
    """
    uuid = '99999999-1111-4111-8111-111111111111'
    evil = '/mnt/a"b\\c\nd'
    text = text_of(prometheus.Exposition.of_sweep(
        sweep([uuid], mounts=(evil,)), 1.0))
    [family] = [f for f in text_string_to_metric_families(text)
                if f.name == 'ceilometer_guest_filesystem_usage']
    assert [s.labels['mountpoint'] for s in family.samples] == [evil]
