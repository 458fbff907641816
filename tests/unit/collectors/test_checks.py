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

"""Tests of the value checks every collector relies on."""

import math
import re

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import checks


@pytest.mark.parametrize('value', [0, 1, 2 ** 63 - 1, 0.5, 1e18])
def test_number_accepts_finite_non_negative(value):
    assert checks.number(value, 'x') == value


@pytest.mark.parametrize('value, reason', [
    (None, 'missing'),
    (True, 'not a number'),
    (False, 'not a number'),
    ('12', 'not a number'),
    ([1], 'not a number'),
    ({'a': 1}, 'not a number'),
    (math.nan, 'not finite'),
    (math.inf, 'not finite'),
    (-math.inf, 'not finite'),
    (-1, 'negative'),
    (-0.001, 'negative'),
    (2 ** 63 + 1, 'absurdly large'),
    (1e300, 'absurdly large'),
])
def test_number_rejects_nonsense_with_reason(value, reason):
    with pytest.raises(checks.Nonsense, match=reason) as exc:
        checks.number(value, 'disk vda read-ios')
    assert str(exc.value).startswith('disk vda read-ios ')


def test_count_wants_an_integer():
    assert checks.count(7, 'x') == 7
    with pytest.raises(checks.Nonsense, match='not an integer'):
        checks.count(7.0, 'x')
    with pytest.raises(checks.Nonsense, match='not a number'):
        checks.count(True, 'x')


@pytest.mark.parametrize('value, reason', [
    (None, 'not a string'),
    (5, 'not a string'),
    ('', 'empty'),
    ('x' * 256, 'longer than 255'),
    ('eth0\n', 'control characters'),
    ('a\x00b', 'control characters'),
    ('a\x7fb', 'control characters'),
])
def test_name_rejects_bad_items(value, reason):
    with pytest.raises(checks.Nonsense, match=reason):
        checks.name(value, 'name')


def test_name_accepts_windows_and_unicode_names():
    for value in ('C:\\', 'Ethernet Instance 0', '/mnt/données', 'x' * 255):
        assert checks.name(value, 'name') == value


def test_show_bounds_what_it_quotes():
    assert len(checks.show('x' * 10000)) < 70


def test_text_truncates_and_rejects_non_strings():
    assert checks.text('y' * 300) == 'y' * 255
    assert checks.text(12) is None


def test_entries_wants_a_list():
    assert checks.entries([], 'cmd') == []
    with pytest.raises(base.BadReply, match='cmd: expected a list, got dict'):
        checks.entries({}, 'cmd')


def test_cap_keeps_the_first_and_says_how_many_left_out():
    dropped = []
    assert checks.cap(list(range(10)), 4, 'disks', dropped) == [0, 1, 2, 3]
    assert dropped == ['6 disks over [qga_polling] max_items=4 left out']
    dropped = []
    assert checks.cap([1, 2], 4, 'disks', dropped) == [1, 2]
    assert dropped == []


def test_exclusion_compiles_and_empty_means_nothing_excluded():
    pattern = checks.exclusion(r'^loop', '[disk_collector] exclude')
    assert checks.is_excluded(pattern, 'loop0')
    assert not checks.is_excluded(pattern, 'vda')
    assert checks.exclusion('', '[disk_collector] exclude') is None
    assert not checks.is_excluded(None, 'loop0')


def test_exclusion_searches_so_unanchored_patterns_work():
    pattern = checks.exclusion('veth', '[network_collector] exclude')
    assert checks.is_excluded(pattern, 'cali-veth12')


def test_invalid_exclusion_refuses_to_load():
    with pytest.raises(ValueError, match=re.escape(
            "[disk_collector] exclude = '(unclosed' is not a valid")):
        checks.exclusion('(unclosed', '[disk_collector] exclude')


def test_strings_bounds_and_filters():
    assert checks.strings(['a', 5, '', None, 'b', 'c'], 2) == ['a', 'b']
