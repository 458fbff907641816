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

"""Tests of the qga:monitor opt-out resolution on real Instance objects."""

from __future__ import annotations

import pytest

from nova_qga import opt_out
from tests.fixtures import nova_domain


def test_default_is_monitored():
    decision = opt_out.resolve(nova_domain.make_instance())
    assert not decision.opted_out
    assert decision.errors == ()


@pytest.mark.parametrize('value', ['false', 'False', '0', 'no', 'off'])
def test_flavor_extra_spec_false(value):
    decision = opt_out.resolve(nova_domain.make_instance(
        extra_specs={'qga:monitor': value}))
    assert decision.opted_out
    assert decision.opted_out_by == ('flavor extra spec',)


def test_image_property_false():
    decision = opt_out.resolve(nova_domain.make_instance(
        image_properties={'qga:monitor': 'false'}))
    assert decision.opted_out_by == ('image property',)


def test_either_false_opts_out():
    decision = opt_out.resolve(nova_domain.make_instance(
        extra_specs={'qga:monitor': 'true'},
        image_properties={'qga:monitor': 'false'}))
    assert decision.opted_out


@pytest.mark.parametrize('value', ['true', 'yes', '1'])
def test_true_is_monitored(value):
    decision = opt_out.resolve(nova_domain.make_instance(
        extra_specs={'qga:monitor': value}))
    assert not decision.opted_out


def test_bad_value_is_reported_and_ignored():
    decision = opt_out.resolve(nova_domain.make_instance(
        extra_specs={'qga:monitor': 'flase'},
        image_properties={'qga:monitor': 'false'}))
    assert decision.errors == (
        "flavor extra spec qga:monitor='flase' is not a boolean",)
    assert decision.opted_out_by == ('image property',)
