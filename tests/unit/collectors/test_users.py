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

"""UsersCollector on real and hand-written guest-get-users replies."""

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import users
from tests.unit.collectors import support


def _collector():
    return users.UsersCollector(support.make_conf())


def test_real_capture_with_nobody_logged_in_is_zero():
    collector = _collector()
    result = collector.parse(support.load_json('users.json'))
    support.assert_sane(collector, result)
    [reading] = result.readings
    assert reading.volume == 0
    assert reading.metadata == {'sessions': 0, 'user_names': []}


def test_distinct_users_and_sessions():
    result = _collector().parse(support.load_json('users_sessions.json'))
    [reading] = result.readings
    assert reading.meter == 'guest.users'
    assert reading.volume == 2
    assert reading.metadata == {'sessions': 3,
                                'user_names': ['alice', 'root']}


def test_windows_users_are_told_apart_by_domain():
    result = _collector().parse(support.load_json('users_windows.json'))
    [reading] = result.readings
    assert reading.volume == 2
    assert reading.metadata == {
        'sessions': 3,
        'user_names': ['CORP\\Administrator',
                       'WIN-7QK2N3L1\\Administrator']}


def test_empty_domain_is_no_domain():
    result = _collector().parse([{'user': 'bob', 'domain': ''}])
    assert result.readings[0].metadata['user_names'] == ['bob']


def test_names_in_metadata_are_bounded():
    reply = [{'user': 'u%03d' % i, 'login-time': 1.0} for i in range(100)]
    [reading] = _collector().parse(reply).readings
    assert reading.volume == 100
    assert len(reading.metadata['user_names']) == users.MAX_NAMES


@pytest.mark.parametrize('entry, reason', [
    ('root', 'session #1 is not an object'),
    ({'login-time': 1.0}, 'user of session #1 is not a string'),
    ({'user': ''}, 'user of session #1 is empty'),
    ({'user': 'x' * 300}, 'longer than 255'),
    ({'user': 'a\nb'}, 'control characters'),
    ({'user': 'a', 'domain': 5}, 'domain of session #1 is not a string'),
    ({'user': 'a' * 200, 'domain': 'd' * 100},
     'user of session #1 is longer than 255'),
])
def test_any_bad_session_drops_the_count(entry, reason):
    collector = _collector()
    result = collector.parse([{'user': 'root'}, entry])
    support.assert_sane(collector, result)
    assert result.readings == []
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


@pytest.mark.parametrize('reply', [None, {}, 'root'])
def test_reply_that_is_not_a_list_is_a_bad_reply(reply):
    with pytest.raises(base.BadReply, match='guest-get-users'):
        _collector().parse(reply)
