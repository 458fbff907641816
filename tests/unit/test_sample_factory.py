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

"""From a guest report to Ceilometer samples: ids, sanity, liveness."""

import hashlib
import math
import string

from hypothesis import assume
from hypothesis import given
from hypothesis import strategies as st
import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks
from ceilometer_qga.guest import Guest
from ceilometer_qga import meters as meters_mod
from ceilometer_qga import report as report_mod
from ceilometer_qga import sample_factory

UUID = '8a4c4b07-6a1c-4a55-a6b3-5d3c7e8a0f11'
FS_USED = base.Meter('guest.filesystem.used', base.GAUGE, 'B', 'filesystem')
LOAD1 = base.Meter('guest.load.1', base.GAUGE, 'process')
METERS = {m.name: m for m in (FS_USED, LOAD1,
                              *meters_mod.LIVENESS_METERS)}


def guest():
    return Guest(instance_id=UUID, name='instance-0000000a',
                 display_name='web-1', project_id='p1', user_id='u1',
                 metadata={'instance_type': 'm1.small', 'host': 'cmp1'})


@pytest.mark.parametrize('item,expected', [
    (None, UUID),
    ('/', UUID + '-_2F'),
    ('/var/lib', UUID + '-_2Fvar_2Flib'),
    ('/a-b c', UUID + '-_2Fa-b_20c'),
    ('/a_b', UUID + '-_2Fa_5Fb'),
    ('/dätä', UUID + '-_2Fd_C3_A4t_C3_A4'),
    ('vda', UUID + '-vda'),
    ('eth0', UUID + '-eth0'),
    ('eth0.100', UUID + '-eth0.100'),
])
def test_resource_id(item, expected):
    assert sample_factory.resource_id(UUID, item) == expected


def test_resource_ids_do_not_collide():
    items = ['/a/b', '/a_b', '/a-b', '/a%2Fb', 'a/b', '/a_2Fb', '/a b']
    ids = {sample_factory.resource_id(UUID, i) for i in items}
    assert len(ids) == len(items)
    assert all('/' not in i and '%' not in i for i in ids)


def test_long_items_fall_back_to_a_digest():
    long = '/' + 'x' * 300
    rid = sample_factory.resource_id(UUID, long)
    assert len(rid) <= 255
    assert rid == UUID + '-' + hashlib.sha1(long.encode()).hexdigest()
    # just under the limit stays readable
    fits = '/' + 'y' * (255 - len(UUID) - 1 - 3)
    assert sample_factory.resource_id(UUID, fits).endswith('y' * 10)


@given(st.text(max_size=300))
def test_any_item_gives_a_gnocchi_safe_id(item):
    rid = sample_factory.resource_id(UUID, item)
    assert len(rid) <= 255
    assert set(rid[len(UUID) + 1:]) <= set(
        string.ascii_letters + string.digits + '.-_')


@pytest.mark.parametrize('volume,ok', [
    (0, True), (1.5, True), (2 ** 62, True), (2 ** 63 - 1, True),
    (2 ** 63, False), (-0.0, False),
    (-1, False), (2 ** 63 + 1, False), (math.nan, False), (math.inf, False),
    (True, False), ('5', False), (None, False), ([1], False),
])
def test_valid_volume(volume, ok):
    assert checks.valid_volume(volume) is ok


def test_down_guest_gets_only_the_liveness_sample():
    report = report_mod.GuestReport(guest(), state='timeout',
                                    error='no reply within the timeout')
    samples = sample_factory.build_samples(report, METERS, 'ts', 1.0)
    assert [s.name for s in samples] == ['guest.agent.up']
    up = samples[0]
    assert up.volume == 0 and up.unit == 'agent' and up.type == 'gauge'
    assert up.resource_id == UUID
    assert up.resource_metadata['agent_state'] == 'timeout'
    assert up.resource_metadata['agent_error'] == 'no reply within the timeout'
    assert up.project_id == 'p1' and up.user_id == 'u1'


def test_up_guest_samples_carry_instance_metadata_and_facts():
    report = report_mod.GuestReport(guest(), latency_ms=0.25,
                                    facts={'os_id': 'debian'})
    report.outcomes.append(report_mod.CollectorOutcome(
        'Fs', 'native', base.ParseResult(
            readings=[base.Reading('guest.filesystem.used', 100, '/',
                                   {'fstype': 'ext4'}),
                      base.Reading('guest.filesystem.used', -5, '/x'),
                      base.Reading('guest.filesystem.used', math.nan, '/y'),
                      base.Reading('guest.no.such.meter', 1)],
            dropped=['/z: used > total'])))
    report.outcomes.append(report_mod.CollectorOutcome(
        'Load', 'fallback', base.ParseResult(
            readings=[base.Reading('guest.load.1', 0.5)])))
    dropped = {}
    samples = sample_factory.build_samples(report, METERS, 'ts', 2.0, dropped)
    by_name = {}
    for s in samples:
        by_name.setdefault(s.name, []).append(s)
    assert by_name['guest.agent.up'][0].volume == 1
    assert by_name['guest.agent.latency'][0].volume == 0.25
    fs = by_name['guest.filesystem.used']
    assert len(fs) == 1  # the negative and the NaN value were dropped
    assert fs[0].resource_id == UUID + '-_2F'
    md = fs[0].resource_metadata
    assert md['display_name'] == 'web-1'
    assert md['instance_type'] == 'm1.small'
    assert md['os_id'] == 'debian'
    assert md['fstype'] == 'ext4'
    assert md['collected_by'] == 'native'
    assert by_name['guest.load.1'][0].resource_metadata['collected_by'] == \
        'fallback'
    assert 'guest.no.such.meter' not in by_name
    # what was left out is handed back (the session logs it once per
    # incident), not logged here per value
    assert set(dropped) == {'Fs'}
    text = ' '.join(dropped['Fs'])
    assert 'used > total' in text and 'not a sane value' in text
    assert 'unknown meter' in text and len(dropped['Fs']) == 4
    assert 'unknown meter' in text


@pytest.mark.parametrize('item', ['/', '/var/lib', 'vda', 'eth0', 'x_y',
                                  '/mnt/données', '_2F'])
def test_item_name_is_what_the_resource_id_encodes(item):
    rid = sample_factory.resource_id(UUID, item)
    assert sample_factory.item_name(UUID, rid) == item


def test_item_name_of_the_instance_is_none():
    assert sample_factory.item_name(UUID, UUID) is None


@given(st.text(min_size=1, max_size=60).filter(
    lambda s: '\ud800' > max(s) or min(s) > '\udfff'))
def test_item_name_inverts_resource_id(item):
    rid = sample_factory.resource_id(UUID, item)
    digest = hashlib.sha1(item.encode('utf-8')).hexdigest()
    assume(rid != '%s-%s' % (UUID, digest))  # too long: hashed, one-way
    assert sample_factory.item_name(UUID, rid) == item


@pytest.mark.parametrize('rid', ['other-uuid-vda', UUID + '-_ZZ',
                                 UUID + '-_2', UUID + '-a_-1'])
def test_item_name_shows_what_it_cannot_decode_as_is(rid):
    name = sample_factory.item_name(UUID, rid)
    assert name == (rid if not rid.startswith(UUID) else rid[37:])
