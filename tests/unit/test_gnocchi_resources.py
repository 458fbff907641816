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

"""etc/ceilometer/gnocchi_resources.yaml, read by Ceilometer's own code.

The definitions are loaded the way Ceilometer's Gnocchi publisher loads them
(``GnocchiPublisher._load_definitions`` of Ceilometer 27, the file found in
the directory of ``ceilometer.conf``), and checked against the meter
catalogue *of the code*: the ``meters`` of every installed collector plus
the engine's liveness meters, so the file cannot fall behind a new meter.

Attribute expressions are evaluated by Ceilometer's ``ResourcesDefinition``
on samples made the real way: a Nova domain (XML made by Nova's code)
running on libvirt's test driver, found by our libvirt discovery; replies
captured from a real qemu-ga 7.2 (tests/unit/collectors/data) parsed by the
collectors; samples built by ``sample_factory``, put in wire format and
turned back into ``ceilometer.sample.Sample`` by Ceilometer's
``TelemetryIpc`` endpoint, as the notification agent does.  Gnocchi itself
does not run here: what it would do with the resources is not tested.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import io
import os
import shlex
import shutil
import uuid

from ceilometer.publisher import gnocchi as ceilometer_gnocchi
from ceilometer import service as ceilometer_service
from ceilometer.telemetry import notifications as ceilometer_notifications
from gnocchiclient.v1 import resource_type_cli
import libvirt
from oslo_config import cfg
import pytest
import yaml

from ceilometer_qga.cmd import gnocchi_resource_types
from ceilometer_qga import collectors
from ceilometer_qga.collectors import base as collector_base
from ceilometer_qga import conf as qga_conf
from ceilometer_qga.discovery import libvirt as lv_discovery
from ceilometer_qga import meters as meters_mod
from ceilometer_qga.qga import os_facts as osfacts
from ceilometer_qga import report as report_mod
from ceilometer_qga import sample as sample_mod
from ceilometer_qga import sample_factory
from tests.fixtures import nova_domain
from tests.unit.collectors import support

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
OURS = os.path.join(ROOT, 'etc', 'ceilometer', 'gnocchi_resources.yaml')
PACKAGED = os.path.join(os.path.dirname(ceilometer_gnocchi.__file__),
                        'data', 'gnocchi_resources.yaml')

#: where each scope of meter (collectors.base.Meter.scope) must go
RESOURCE_TYPE_OF_SCOPE = {
    'instance': 'instance',
    'filesystem': 'instance_guest_filesystem',
    'disk': 'instance_guest_disk',
    'interface': 'instance_guest_interface',
}

#: the per-item metadata key each new type names its resource by
ITEM_ATTRIBUTE = {
    'instance_guest_filesystem': ('mountpoint', 'mountpoint'),
    'instance_guest_disk': ('name', 'disk_name'),
    'instance_guest_interface': ('name', 'vnic_name'),
}

#: captured qga replies (tests/unit/collectors/data) for each command, and
#: /proc files for the collectors without a command
REPLIES = {
    'guest-get-fsinfo': 'fsinfo.json',
    'guest-get-cpustats': 'cpustats.json',
    'guest-get-diskstats': 'diskstats.json',
    'guest-get-load': 'load_qga10.json',
    'guest-network-get-interfaces': 'network.json',
    'guest-get-users': 'users_sessions.json',
    'guest-get-vcpus': 'vcpus.json',
}
FILES = {'/proc/meminfo': 'meminfo.txt'}

INSTANCE_UUID = '6f2c4d8e-1a3b-4c5d-8e9f-0a1b2c3d4e5f'
HOST = 'compute-3'
SECRET = 'gnocchi-test-secret'


def _qga_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    qga_conf.register_opts(conf)
    conf([], project='qga-monitor-tests', default_config_files=[],
         default_config_dirs=[])
    conf.set_override('uri', 'test:///default',
                      group='libvirt_discovery')
    conf.set_override('host', HOST)
    return conf


def _all_collectors(conf: cfg.ConfigOpts) -> list[collector_base.Collector]:
    """Every installed collector, loaded as the poller loads them."""
    names = sorted(ep.name for ep in importlib.metadata.entry_points(
        group=collectors.NAMESPACE))
    return collectors.load_collectors(conf, names)


@pytest.fixture(scope='module')
def catalogue() -> dict[str, collector_base.Meter]:
    """Meter name -> Meter, from the code."""
    meters = {m.name: m for m in meters_mod.LIVENESS_METERS}
    for collector in _all_collectors(_qga_conf()):
        for meter in collector.meters:
            assert meter.name not in meters, meter
            meters[meter.name] = meter
    return meters


@pytest.fixture(scope='module')
def ceilometer_conf(tmp_path_factory) -> cfg.ConfigOpts:
    """Ceilometer's notification-agent configuration, our file beside it."""
    etc = tmp_path_factory.mktemp('etc-ceilometer')
    shutil.copy(OURS, etc / 'gnocchi_resources.yaml')
    conf_file = etc / 'ceilometer.conf'
    conf_file.write_text('[publisher]\ntelemetry_secret = %s\n' % SECRET)
    return ceilometer_service.prepare_service(
        ['ceilometer-agent-notification', '--config-file', str(conf_file)],
        [])


@pytest.fixture(scope='module')
def definitions(ceilometer_conf):
    """Ceilometer's ResourcesDefinition objects for our file."""
    resource_defs, _policies = (
        ceilometer_gnocchi.GnocchiPublisher._load_definitions(
            ceilometer_conf, None, 'gnocchi_resources.yaml'))
    return resource_defs


def _yaml(path: str) -> dict:
    with open(path) as src:
        return yaml.safe_load(src)


@contextlib.contextmanager
def _running_nova_domain():
    """A running domain on test:///default with Nova's metadata."""
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    conn = libvirt.open('test:///default')
    dom = None
    try:
        xml = nova_domain.nova_domain_xml(nova_domain.Server(
            uuid=INSTANCE_UUID, domain_name='instance-0000002a',
            display_name='db-1',
            channels=((nova_domain.MONITOR,
                       '/run/qga-test/%s.sock' % INSTANCE_UUID),)))
        dom = conn.defineXML(xml)
        dom.create()
        yield
    finally:
        if dom is not None:
            for step in (dom.destroy, dom.undefine):
                with contextlib.suppress(libvirt.libvirtError):
                    step()
        conn.close()


@pytest.fixture(scope='module')
def samples(ceilometer_conf):
    """Ceilometer samples of one guest, every collector, real data."""
    conf = _qga_conf()
    with _running_nova_domain():
        discovery = lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery)
        try:
            (guest,) = [g for g in discovery.discover()
                        if g.instance_id == INSTANCE_UUID]
        finally:
            discovery.close()
    outcomes = []
    for collector in _all_collectors(conf):
        if collector.command is not None:
            result = collector.parse(support.load_json(
                REPLIES[collector.command]))
            source = 'native'
        else:
            result = collector.parse_file(support.load_text(
                FILES[collector.fallback_file]))
            source = 'fallback'
        assert result.readings, collector
        outcomes.append(report_mod.CollectorOutcome(
            type(collector).__name__, source, result))
    facts = {'agent_version': '7.2.22'}
    facts.update(osfacts.parse_osinfo(support.load_json('osinfo.json')))
    report = report_mod.GuestReport(guest=guest, latency_ms=0.4,
                                    facts=facts, outcomes=outcomes)
    meters = {m.name: m for c in _all_collectors(conf) for m in c.meters}
    ours = sample_factory.build_samples(
        report, meters, '2025-01-01T00:00:00+00:00', 12.5)
    message = {'event_type': 'telemetry.polling',
               'payload': {'samples': [sample_mod.to_message(s, SECRET)
                                       for s in ours]}}
    endpoint = ceilometer_notifications.TelemetryIpc(ceilometer_conf, None)
    return list(endpoint.build_sample(message))


def test_ceilometer_finds_our_file_in_its_config_dir(ceilometer_conf):
    found = ceilometer_conf.find_file('gnocchi_resources.yaml')
    with open(found) as src, open(OURS) as ours:
        assert src.read() == ours.read()


def test_every_definition_loads(definitions):
    """_load_definitions logs and skips a bad resource: none may be lost."""
    assert len(definitions) == len(_yaml(OURS)['resources'])


def test_every_meter_maps_to_exactly_one_resource_type(definitions,
                                                       catalogue):
    for name, meter in catalogue.items():
        types = [rd.cfg['resource_type'] for rd in definitions
                 if name in rd.metrics]
        assert types == [RESOURCE_TYPE_OF_SCOPE[meter.scope]], name


def test_no_unknown_guest_meter_in_the_file(definitions, catalogue):
    listed = {m for rd in definitions for m in rd.metrics
              if m.startswith('guest.')}
    assert listed == set(catalogue)


def test_new_resource_types_hold_only_catalogue_meters(definitions,
                                                       catalogue):
    for rd in definitions:
        if rd.cfg['resource_type'] in ITEM_ATTRIBUTE:
            assert set(rd.metrics) <= set(catalogue)


def test_cumulative_meters_get_a_rate_archive_policy(definitions, catalogue):
    """Like Ceilometer's cpu and vNIC counters: rate:mean is kept."""
    policies = {p['name']: p for p in _yaml(OURS)['archive_policies']}
    for rd in definitions:
        for name, extra in rd.metrics.items():
            if catalogue.get(name) and catalogue[name].type == 'cumulative':
                policy = policies[extra['archive_policy_name']]
                assert 'rate:mean' in policy['aggregation_methods'], name


def test_ceilometer_definitions_are_kept_unchanged():
    """The file is Ceilometer 27's, plus our additions to ``instance``."""
    packaged = _yaml(PACKAGED)
    ours = _yaml(OURS)
    for key in ('archive_policy_default', 'archive_policies'):
        assert ours[key] == packaged[key]
    ours_by_type = {r['resource_type']: r for r in ours['resources']}
    for theirs in packaged['resources']:
        mine = copy.deepcopy(ours_by_type[theirs['resource_type']])
        if theirs['resource_type'] == 'instance':
            mine['metrics'] = {m: v for m, v in mine['metrics'].items()
                               if not m.startswith('guest.')}
            for name in ITEM_ATTRIBUTE:
                del mine['event_associated_resources'][name]
        assert mine == theirs, theirs['resource_type']


def test_instance_delete_ends_the_per_item_resources():
    """event_associated_resources: Ceilometer ends them with the instance."""
    ours = _yaml(OURS)
    (instance,) = [r for r in ours['resources']
                   if r['resource_type'] == 'instance']
    for name in ITEM_ATTRIBUTE:
        assert (instance['event_associated_resources'][name]
                == '{"=": {"instance_id": "%s"}}')


def test_samples_cover_the_catalogue(samples, catalogue):
    assert {s.name for s in samples} == set(catalogue)


def test_attributes_resolve_on_real_samples(definitions, samples):
    metric_map = {m: rd for rd in definitions for m in rd.metrics}
    for s in samples:
        rd = metric_map[s.name]
        resource_type = rd.cfg['resource_type']
        attrs = rd.sample_attributes(s)
        for value in attrs.values():
            assert not isinstance(value, str) or len(value) <= 255, s
        if resource_type == 'instance':
            assert s.resource_id == INSTANCE_UUID
            # Required by Gnocchi's instance type: a sample of ours can be
            # the first to create the resource.
            assert attrs['display_name'] == 'db-1'
            assert attrs['flavor_id'] == '2'
            assert attrs['flavor_name'] == 'm1.small'
            assert attrs['host'] == HOST
            continue
        schema = gnocchi_resource_types.RESOURCE_TYPES[resource_type]
        assert set(attrs) <= set(schema), s
        for name, definition in schema.items():
            if definition['required']:
                assert name in attrs, (s.name, s.resource_id, name)
        assert str(uuid.UUID(attrs['instance_id'])) == INSTANCE_UUID
        attribute, key = ITEM_ATTRIBUTE[resource_type]
        assert attrs[attribute] == s.resource_metadata[key]
        # Gnocchi refuses "/" in resource ids (Ceilometer's publisher
        # replaces it, which would make two mountpoints one resource).
        assert '/' not in s.resource_id
        assert s.resource_id.startswith(INSTANCE_UUID + '-')


def test_filesystem_resources_carry_type_and_device(definitions, samples):
    metric_map = {m: rd for rd in definitions for m in rd.metrics}
    root = [s for s in samples if s.name == 'guest.filesystem.used'
            and s.resource_metadata['mountpoint'] == '/']
    assert len(root) == 1
    attrs = metric_map['guest.filesystem.used'].sample_attributes(root[0])
    assert attrs['fstype'] and attrs['device']


def _printed_commands() -> list[list[str]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert gnocchi_resource_types.main([]) == 0
    lines = out.getvalue().splitlines()
    # The devstack plugin splits the lines on blanks (read -a): no quoting.
    for line in lines:
        assert shlex.split(line) == line.split()
    return [line.split() for line in lines]


def test_printed_commands_create_the_new_types_of_the_file():
    """Parsed by gnocchiclient's own CLI parser, compared with the YAML."""
    packaged = {r['resource_type'] for r in _yaml(PACKAGED)['resources']}
    yaml_types = {r['resource_type']: r for r in _yaml(OURS)['resources']
                  if r['resource_type'] not in packaged}
    command = resource_type_cli.CliResourceTypeCreate(None, None)
    parser = command.get_parser('openstack metric resource-type create')
    created = {}
    for words in _printed_commands():
        assert words[:4] == ['openstack', 'metric', 'resource-type',
                             'create']
        args = parser.parse_args(words[4:])
        created[args.name] = dict(args.attribute)
    assert set(created) == set(yaml_types)
    for name, attributes in created.items():
        assert set(attributes) == set(yaml_types[name]['attributes']), name
        assert attributes == gnocchi_resource_types.RESOURCE_TYPES[name]
        for attribute in attributes.values():
            if attribute['type'] == 'string':
                assert attribute['max_length'] >= 255


def test_readme_shows_the_printed_commands():
    """etc/ceilometer/README.rst quotes the tool's output: keep it current."""
    readme = os.path.join(ROOT, 'etc', 'ceilometer', 'README.rst')
    with open(readme) as src:
        quoted = [line.strip().split() for line in src
                  if line.strip().startswith('openstack metric resource-type create')]
    assert quoted == _printed_commands()


def _gnocchi_view(resource_type: str) -> dict:
    """Attributes as Gnocchi returns them: every option filled in."""
    view = {}
    for name, definition in gnocchi_resource_types.RESOURCE_TYPES[resource_type].items():
        view[name] = dict(definition)
        if definition['type'] == 'string':
            view[name].setdefault('min_length', 0)
            view[name].setdefault('max_length', 255)
    return view


def test_apply_leaves_a_matching_type_alone():
    for resource_type in gnocchi_resource_types.RESOURCE_TYPES:
        assert gnocchi_resource_types.missing_attributes(
            resource_type, _gnocchi_view(resource_type)) == []


def test_apply_adds_only_missing_optional_attributes():
    existing = _gnocchi_view('instance_guest_interface')
    del existing['mac']
    missing = gnocchi_resource_types.missing_attributes('instance_guest_interface', existing)
    assert missing == ['mac']
    assert gnocchi_resource_types.add_operations('instance_guest_interface', missing) == [
        {'op': 'add', 'path': '/attributes/mac',
         'value': gnocchi_resource_types.RESOURCE_TYPES['instance_guest_interface']['mac']}]
    with pytest.raises(gnocchi_resource_types.ResourceTypeConflict, match='required'):
        gnocchi_resource_types.add_operations('instance_guest_interface', ['name'])


def test_apply_refuses_an_attribute_defined_otherwise():
    existing = _gnocchi_view('instance_guest_disk')
    existing['name'] = {'type': 'string', 'required': True, 'min_length': 0, 'max_length': 64}
    with pytest.raises(gnocchi_resource_types.ResourceTypeConflict,
                       match='instance_guest_disk: attribute name'):
        gnocchi_resource_types.missing_attributes('instance_guest_disk', existing)
