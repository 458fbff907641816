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

"""Our samples in a real Gnocchi, through Ceilometer's notification agent.

Real here (``tests/fixtures/gnocchi.py``): PostgreSQL, Gnocchi 4.7
(``gnocchi-api`` under uwsgi, ``gnocchi-metricd``), Ceilometer 27's
``ceilometer-agent-notification`` with the meter and event pipelines
publishing ``gnocchi://``, RabbitMQ, our ``etc/ceilometer/gnocchi_resources.yaml``
and resource types (``qga-gnocchi-resource-types --apply``); on the
sending side ``qga-polling`` as a process (static discovery of qemu-ga 7.2
stand-ins, or libvirt discovery of Nova domains whose dedicated channel is a
stand-in's socket), and Nova's instance notifications sent with
oslo.messaging exactly as Nova's ``rpc.get_notifier('compute')`` sends them.
Every assertion queries Gnocchi's REST API.

libvirt discovery reads ``test:///PATH``: libvirt's test driver loading a
node file of Nova domains (XML made by Nova's own code,
``tests/fixtures/nova_domain.py``), so that a separate process sees
them; the e2e suite covers real QEMU domains.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid

from nova import context as nova_context
from nova.notifications import base as notification_base
from oslo_config import cfg
import oslo_messaging
import pytest
import yaml

from ceilometer_qga import meters as meter_catalogue
from tests.fixtures.agents import qga_standin
from tests.fixtures import gnocchi as gnocchi_fixture
from tests.fixtures.gnocchi import telemetry  # noqa: F401
from tests.fixtures import nova_domain

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUR_TYPES = ('instance_guest_filesystem', 'instance_guest_disk', 'instance_guest_interface')


def run_tool(telemetry) -> subprocess.CompletedProcess:  # noqa: F811
    return subprocess.run(telemetry.resource_types_tool, env=telemetry.tool_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_resource_type_tool_is_idempotent(telemetry):  # noqa: F811
    """The fixture ran it on a fresh Gnocchi; twice more: exit 0, same types."""
    assert telemetry.resource_types_first_run.splitlines() == [
        '%s: created' % t for t in OUR_TYPES]
    before = {name: telemetry.api.get('/v1/resource_type/%s' % name) for name in OUR_TYPES}
    for _ in range(2):
        result = run_tool(telemetry)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ['%s: unchanged' % t for t in OUR_TYPES]
    after = {name: telemetry.api.get('/v1/resource_type/%s' % name) for name in OUR_TYPES}
    assert after == before
    print('\ngnocchi set-up timings: %s; RSS %.0f MiB' % (
        {k: round(v, 1) for k, v in telemetry.timings.items()}, telemetry.rss_mib()))


# -- sending side ------------------------------------------------------------

STATIC_PROJECT = 'c0ffee00c0ffee00c0ffee00c0ffee00'
STATIC_USER = 'beef0000beef0000beef0000beef0000'
STATIC_FLAVOR = ('7', 'static.small')
#: the compute host's name ([DEFAULT] host, Nova's publisher_id)
NOVA_HOST = 'compute-1'
#: the two sweeps; guest.cpu.time needs two for a rate
SWEEPS = 2


def yaml_meters() -> dict[str, tuple[str, str]]:
    """meter -> (resource type, archive policy) as our gnocchi_resources.yaml says."""
    with open(gnocchi_fixture.GNOCCHI_RESOURCES) as f:
        doc = yaml.safe_load(f)
    meters = {}
    for rd in doc['resources']:
        metrics = rd.get('metrics') or {}
        if isinstance(metrics, list):  # the older form: names only
            metrics = dict.fromkeys(metrics)
        for name, extra in metrics.items():
            policy = (extra or {}).get('archive_policy_name', doc['archive_policy_default'])
            meters[name] = (rd['resource_type'], policy)
    return meters


def nova_payload(server: nova_domain.Server) -> dict[str, Any]:
    """The payload of Nova's legacy compute.instance.* notifications.

    Made by Nova's own ``nova.notifications.base.info_from_instance`` from
    a real ``nova.objects.Instance`` (the one the domain metadata is made
    of), with the fields a booted instance has set.
    """
    instance = nova_domain.nova_instance(server)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for key, value in dict(
            reservation_id='r-%s' % server.uuid[:8], hostname=server.display_name,
            instance_type_id=2, architecture='x86_64', host=NOVA_HOST, node=NOVA_HOST,
            availability_zone='nova', cell_name=None, created_at=now, terminated_at=None,
            deleted_at=None, launched_at=now, os_type='linux', kernel_id='', ramdisk_id='',
            vm_state='active', task_state=None, progress=0, access_ip_v4=None,
            access_ip_v6=None, metadata={}).items():
        setattr(instance, key, value)
    return notification_base.info_from_instance(nova_context.get_admin_context(),
                                                instance, None)


def send_nova_notification(transport_url: str, event_type: str,
                           payload: dict[str, Any]) -> None:
    """Send as Nova does: ``rpc.get_notifier('compute', host)``, exchange
    ``nova``, topic ``notifications``, driver ``messagingv2``, INFO.
    """
    # Nova makes "nova" the default exchange with set_transport_defaults,
    # which would change it for the whole test process: a configuration
    # file of this notifier's own says it instead.
    with tempfile.NamedTemporaryFile('w', suffix='.conf') as conf_file:
        conf_file.write('[DEFAULT]\ncontrol_exchange = nova\n')
        conf_file.flush()
        conf = cfg.ConfigOpts()
        conf(['--config-file', conf_file.name], project='nova')
        transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
    try:
        assert conf.control_exchange == 'nova'
        notifier = oslo_messaging.Notifier(
            transport, publisher_id='compute.%s' % NOVA_HOST, driver='messagingv2',
            topics=['notifications'])
        notifier.info({}, event_type, payload)
    finally:
        transport.cleanup()


@dataclasses.dataclass
class Deployment:
    """What one discovery mode sent, and to which instances."""

    mode: str
    servers: dict[str, nova_domain.Server]   # 'alone' / 'nova' -> server
    project_id: str
    user_id: str
    sent: list[dict[str, Any]]
    polling_seconds: list[float]


def polling_conf(workdir: str, telemetry, mode: str, guests: dict[str, str],  # noqa: F811
                 node_file: str | None, sent: str) -> str:
    path = os.path.join(workdir, 'qga-polling-%s.conf' % mode)
    if mode == 'static':
        discovery = """discovery = static
[static_discovery]
guests = %s
project_id = %s
user_id = %s
flavor_id = %s
flavor_name = %s
""" % (','.join('%s=%s' % item for item in guests.items()), STATIC_PROJECT, STATIC_USER,
            *STATIC_FLAVOR)
    else:
        discovery = """discovery = libvirt
transport = auto
[libvirt_discovery]
uri = test://%s
""" % node_file
    with open(path, 'w') as f:
        f.write("""[DEFAULT]
transport_url = %s
host = %s
log_file = %s/qga-polling-%s.log
[publisher]
telemetry_secret = %s
[qga_polling]
publishers = notifier://,file://%s
command_timeout = 2
guest_budget = 5
%s""" % (telemetry.transport_url, NOVA_HOST, workdir, mode, telemetry.secret, sent, discovery))
    return path


def run_sweeps(conf_file: str) -> list[float]:
    """``qga-polling --once`` SWEEPS times, as processes; their durations."""
    durations = []
    for i in range(SWEEPS):
        if i:
            # Distinct timestamps for the counters' rate (Gnocchi keeps
            # one measure per timestamp).
            time.sleep(1.5)
        started = time.monotonic()
        result = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), 'qga-polling'),
             '--config-file', conf_file, '--once'],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-3000:]
        durations.append(time.monotonic() - started)
    return durations


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope='module', params=['static', 'libvirt'])
def deployment(request, telemetry):  # noqa: F811
    """Two stand-in guests polled twice in one discovery mode.

    Instance ``nova`` got Nova's ``compute.instance.create.end`` before any
    sample of ours; instance ``alone`` never hears from Nova.
    """
    mode = request.param
    workdir = tempfile.mkdtemp(prefix='qgn', dir='/tmp')
    standins = []
    try:
        sockets = {}
        for role in ('alone', 'nova'):
            standin = qga_standin.StandinGuest(role, workdir)
            standins.append(standin.start())
            sockets[role] = standin.socket
        servers = {}
        for n, role in enumerate(('alone', 'nova')):
            servers[role] = nova_domain.Server(
                uuid=str(uuid.uuid4()), domain_name='instance-%08x' % (n + 1),
                display_name='%s-%s' % (mode, role), flavor_id=STATIC_FLAVOR[0],
                flavor_name=STATIC_FLAVOR[1],
                channels=((nova_domain.MONITOR, sockets[role]),))
        node_file = None
        if mode == 'libvirt':
            project_id, user_id = nova_domain.PROJECT_ID, nova_domain.USER_ID
            node_file = os.path.join(workdir, 'node.xml')
            with open(node_file, 'w') as f:
                f.write('<node>\n%s</node>\n' % ''.join(
                    nova_domain.nova_domain_xml(s) for s in servers.values()))
        else:
            project_id, user_id = STATIC_PROJECT, STATIC_USER

        payload = nova_payload(servers['nova'])
        payload.update(tenant_id=project_id, user_id=user_id)
        send_nova_notification(telemetry.transport_url, 'compute.instance.create.end', payload)
        created = wait_for(lambda: telemetry.api.resource('instance', servers['nova'].uuid),
                           'Nova\'s create.end in Gnocchi', telemetry)
        # What Nova's event alone gives the instance, before any sample.
        assert (created['project_id'], created['user_id']) == (project_id, user_id)
        assert created['display_name'] == servers['nova'].display_name

        sent_file = os.path.join(workdir, 'sent.jsonl')
        conf_file = polling_conf(workdir, telemetry, mode,
                                 {s.uuid: sockets[r] for r, s in servers.items()},
                                 node_file, sent_file)
        durations = run_sweeps(conf_file)
        yield Deployment(mode=mode, servers=servers, project_id=project_id, user_id=user_id,
                         sent=read_jsonl(sent_file), polling_seconds=durations)
    finally:
        for standin in standins:
            standin.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def wait_for(predicate, what: str, telemetry, timeout: float = 60.0):  # noqa: F811
    """Poll Gnocchi until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail('%s: not within %.0fs\n-- notification agent log:\n%s' % (
                what, timeout, telemetry.log('ceilometer-agent-notification')), pytrace=False)
        time.sleep(0.5)


def stored(telemetry, sample) -> dict[str, Any] | None:  # noqa: F811
    """The Gnocchi resource of one sent sample, once it has that metric."""
    resource_type, _policy = yaml_meters()[sample['counter_name']]
    resource = telemetry.api.resource(resource_type, sample['resource_id'])
    if resource is None or sample['counter_name'] not in resource['metrics']:
        return None
    return resource


def measures_of(telemetry, resource, meter, **params):  # noqa: F811
    return telemetry.api.measures(resource['metrics'][meter], refresh='true', **params)


# -- tests -------------------------------------------------------------------

def test_every_catalogue_meter_reaches_gnocchi(telemetry, deployment):  # noqa: F811
    """Every meter of the catalogue, right type, unit, archive policy, measures."""
    catalogue = meter_catalogue.installed()
    meters = yaml_meters()
    sent_meters = {s['counter_name'] for s in deployment.sent}
    assert sent_meters == set(catalogue), 'a real qemu-ga 7.2 gives every meter'
    assert len(deployment.sent) >= SWEEPS * 2 * len(catalogue)

    by_series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in deployment.sent:
        by_series.setdefault((s['resource_id'], s['counter_name']), []).append(s)
    measures_seen = 0
    for (resource_id, meter), samples in sorted(by_series.items()):
        resource_type, policy = meters[meter]
        resource = wait_for(lambda: stored(telemetry, samples[0]),
                            '%s of %s in Gnocchi' % (meter, resource_id), telemetry)
        assert resource['type'] == resource_type
        metric = telemetry.api.metric(resource['metrics'][meter])
        assert metric['unit'] == catalogue[meter].unit, meter
        assert metric['archive_policy']['name'] == policy, meter
        rows = measures_of(telemetry, resource, meter)
        assert rows, '%s of %s: no measures' % (meter, resource_id)
        # The newest 5-minute mean lies within what we sent.
        volumes = [s['counter_volume'] for s in samples]
        assert min(volumes) - 1e-6 <= rows[-1][2] <= max(volumes) + 1e-6, meter
        measures_seen += len(rows)
    resources = {rid for rid, _m in by_series}
    # The counts doc/source/admin/deployment.rst and the closing note quote
    # (pytest -s shows them).
    print('\n%s: %s' % (deployment.mode, {
        'meters': len(sent_meters), 'resources': len(resources),
        'metrics': len(by_series), 'measures_sent': len(deployment.sent),
        'aggregated_points': measures_seen,
        'polling_s': [round(d, 2) for d in deployment.polling_seconds]}))


def test_cpu_time_gives_a_rate_after_two_sweeps(telemetry, deployment):  # noqa: F811
    """ceilometer-low-rate's rate:mean: the cpu time spent between sweeps."""
    for server in deployment.servers.values():
        resource = wait_for(lambda: telemetry.api.resource('instance', server.uuid),
                            'instance %s' % server.uuid, telemetry)
        sent = sorted((s['timestamp'], s['counter_volume']) for s in deployment.sent
                      if s['resource_id'] == server.uuid
                      and s['counter_name'] == 'guest.cpu.time')
        assert len(sent) == SWEEPS
        rows = measures_of(telemetry, resource, 'guest.cpu.time', aggregation='rate:mean')
        assert len(rows) == 1, rows
        assert rows[0][2] == pytest.approx(sent[1][1] - sent[0][1])
        assert rows[0][2] > 0


def test_instance_resource_complete_from_our_samples_alone(telemetry, deployment):  # noqa: F811
    """No Nova event for ``alone``: our samples created the whole resource."""
    server = deployment.servers['alone']
    resource = wait_for(lambda: telemetry.api.resource('instance', server.uuid),
                        'instance %s' % server.uuid, telemetry)
    assert resource['project_id'] == deployment.project_id
    assert resource['user_id'] == deployment.user_id
    assert resource['flavor_id'] == STATIC_FLAVOR[0]
    assert resource['flavor_name'] == STATIC_FLAVOR[1]
    if deployment.mode == 'libvirt':
        assert resource['display_name'] == server.display_name
        assert resource['image_ref'] == nova_domain.IMAGE_ID
        assert resource['created_at']
    else:
        assert resource['display_name'] == server.uuid
    assert resource['host'] == NOVA_HOST
    assert resource['ended_at'] is None
    instance_meters = {m for m, (t, _p) in yaml_meters().items()
                       if t == 'instance' and m.startswith('guest.')}
    assert instance_meters <= set(resource['metrics'])


def test_nova_project_and_user_survive_our_samples(telemetry, deployment):  # noqa: F811
    """create.end first, then our samples: project and user stay Nova's;
    every per-item resource carries its instance's project and user.
    """
    server = deployment.servers['nova']
    resource = telemetry.api.resource('instance', server.uuid)
    assert resource['project_id'] == deployment.project_id
    assert resource['user_id'] == deployment.user_id
    assert 'guest.agent.up' in resource['metrics']
    for server in deployment.servers.values():
        for resource_type in OUR_TYPES:
            items = [r for r in telemetry.api.resources(resource_type)
                     if r['instance_id'] == server.uuid]
            assert items, (resource_type, server.uuid)
            for item in items:
                assert (item['project_id'], item['user_id']) == (
                    deployment.project_id, deployment.user_id), item


def test_nova_delete_ends_the_per_item_resources(telemetry, deployment):  # noqa: F811
    server = deployment.servers['nova']
    payload = nova_payload(server)
    payload.update(tenant_id=deployment.project_id, user_id=deployment.user_id)
    send_nova_notification(telemetry.transport_url, 'compute.instance.delete.start', payload)

    def ended() -> bool:
        items = [r for t in OUR_TYPES for r in telemetry.api.resources(t)
                 if r['instance_id'] == server.uuid]
        return bool(items) and all(r['ended_at'] for r in items)
    wait_for(ended, 'per-item resources of %s ended' % server.uuid, telemetry)
    assert telemetry.api.resource('instance', server.uuid)['ended_at']
    other = deployment.servers['alone']
    assert all(r['ended_at'] is None for t in OUR_TYPES for r in telemetry.api.resources(t)
               if r['instance_id'] == other.uuid)
