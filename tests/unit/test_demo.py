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

"""The demo's pure parts: its config file and the tables it prints."""

from __future__ import annotations

import json
import os

from oslo_config import cfg

from ceilometer_qga import conf as conf_mod
from tools import demo

GUESTS = (('web', 'aaaaaaaa-0000-4000-8000-000000000001'),
          ('db', 'bbbbbbbb-0000-4000-8000-000000000002'))
WEB, DB = GUESTS[0][1], GUESTS[1][1]


def sample(name, unit, volume, resource, via=None, **meta):
    metadata = dict(meta, instance_id=resource[:36])
    if via:
        metadata['collected_by'] = via
    return {'source': 'openstack', 'counter_name': name, 'counter_type': 'gauge',
            'counter_unit': unit, 'counter_volume': volume, 'resource_id': resource,
            'resource_metadata': metadata}


SAMPLES = [
    sample('guest.agent.up', 'agent', 1, WEB),
    sample('guest.filesystem.used', 'B', 1000, WEB + '-_2F', 'native', mountpoint='/'),
    sample('guest.memory.total', 'MiB', 2000.0, WEB, 'fallback'),
    sample('guest.agent.up', 'agent', 0, DB),
    # second sweep: later values win
    sample('guest.filesystem.used', 'B', 1234567, WEB + '-_2F', 'native', mountpoint='/'),
    sample('guest.load.1', 'process', 0.5, WEB, 'fallback'),
    sample('guest.load.15', 'process', 0.25, WEB, 'fallback'),
    sample('guest.load.5', 'process', 0.375, WEB, 'fallback'),
    # not one of the demo's guests
    sample('guest.agent.up', 'agent', 1, 'cccccccc-0000-4000-8000-000000000003'),
]


def write_samples(tmp_path, samples):
    path = os.path.join(str(tmp_path), 'samples.jsonl')
    with open(path, 'w') as out:
        for s in samples:
            out.write(json.dumps(s) + '\n\n')
    return path


def test_read_samples_skips_blank_lines(tmp_path):
    path = write_samples(tmp_path, SAMPLES)
    assert demo.read_samples(path) == SAMPLES


def test_table_per_guest_with_latest_values(tmp_path):
    text = demo.guest_tables(demo.read_samples(write_samples(tmp_path, SAMPLES)), GUESTS)
    web, db = text.split('\n\n')[:2]
    assert web.splitlines()[0] == 'web  ' + WEB
    header = web.splitlines()[1].split()
    assert header == ['meter', 'resource', 'value', 'unit', 'via']
    rows = {line.split()[0]: line.split() for line in web.splitlines()[3:]}
    assert rows['guest.filesystem.used'] == ['guest.filesystem.used', '/', '1,234,567',
                                             'B', 'qga']
    assert rows['guest.memory.total'] == ['guest.memory.total', '(instance)', '2,000',
                                          'MiB', '/proc']
    assert rows['guest.load.5'][2] == '0.375'
    assert rows['guest.agent.up'] == ['guest.agent.up', '(instance)', '1', 'agent']
    assert db.splitlines()[0] == 'db  ' + DB
    assert [line.split()[:3] for line in db.splitlines()[3:]] == [
        ['guest.agent.up', '(instance)', '0']]
    assert 'cccccccc' not in text


def test_values_are_right_aligned(tmp_path):
    text = demo.guest_tables(SAMPLES, GUESTS[:1])
    lines = text.splitlines()[3:]
    value_ends = {line.index(v) + len(v) for line in lines
                  for v in [line.split()[2]]}
    assert len(value_ends) == 1


def test_guest_without_samples():
    text = demo.guest_tables([], GUESTS[:1])
    assert text.splitlines()[1] == '  no samples'


def test_meter_sources_groups_by_route():
    text = demo.meter_sources(SAMPLES)
    assert text.splitlines() == [
        '9 samples, 6 meters:',
        '  1   from qga commands: guest.filesystem.used',
        '  4   from /proc files read with guest-file-read (no qga command): '
        'guest.load.{1,5,15}, guest.memory.total',
        '  1   about the agent itself: guest.agent.up',
    ]


def test_format_value():
    assert demo.format_value(108944293888) == '108,944,293,888'
    assert demo.format_value(2000.0) == '2,000'
    assert demo.format_value(23.2089) == '23.209'
    assert demo.format_value(0.5) == '0.5'
    assert demo.format_value(None) == 'None'
    assert demo.format_value(True) == 'True'


def test_destinations():
    text = demo.destinations('/tmp/x/samples.jsonl', 10, True, 10)
    assert '/tmp/x/samples.jsonl  (10 samples' in text
    assert 'RabbitMQ exchange ceilometer topic notifications.sample' in text
    text = demo.destinations('/tmp/x/samples.jsonl', 10, False, 0)
    assert 'not used' in text and 'notifications.sample' not in text


def _load(tmp_path, text):
    path = os.path.join(str(tmp_path), 'qga-polling.conf')
    with open(path, 'w') as out:
        out.write(text)
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf.register_opt(cfg.StrOpt('transport_url'))
    conf(['--config-file', path], project='qga-monitor-demo-test')
    return conf


def test_config_with_rabbit_is_valid_for_the_poller(tmp_path):
    guests = [(WEB, '/tmp/qgaX/web.sock'), (DB, '/tmp/qgaX/db.sock')]
    conf = _load(tmp_path, demo.build_config(guests, '/tmp/out/samples.jsonl', True))
    assert conf.qga_polling.discovery == 'static'
    assert conf.qga_polling.transport == 'socket'
    assert conf.qga_polling.publishers == ['file:///tmp/out/samples.jsonl', 'notifier://']
    assert conf.static_discovery.guests == [WEB + '=/tmp/qgaX/web.sock',
                                            DB + '=/tmp/qgaX/db.sock']
    assert conf.transport_url == demo.RABBIT_URL


def test_config_without_rabbit_publishes_to_file_only(tmp_path):
    conf = _load(tmp_path, demo.build_config([(WEB, '/s')], '/tmp/out/s.jsonl', False))
    assert conf.qga_polling.publishers == ['file:///tmp/out/s.jsonl']
    assert conf.transport_url is None
