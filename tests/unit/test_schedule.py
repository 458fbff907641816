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

"""The collector schedule (``ceilometer_qga/schedule.py``): pure, no guest.

Times are given, never read from a clock: ``due`` and ``record`` take
``now``, so every case is exact.
"""

from __future__ import annotations

import importlib.metadata
import re

from oslo_config import cfg
import pytest

from ceilometer_qga import collectors as collectors_pkg
from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import load_collectors
from ceilometer_qga import conf as conf_mod
from ceilometer_qga.report import CollectorOutcome
from ceilometer_qga import schedule

FS = 'filesystem'


def make_conf(**polling):
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='qga-monitor-tests', default_config_files=[])
    for name, value in polling.items():
        conf.set_override(name, value, 'qga_polling')
    return conf


def outcome(source='native', readings=1, name=FS):
    result = base.ParseResult([base.Reading('guest.filesystem.used', 1, '/')
                               for _ in range(readings)])
    return CollectorOutcome(name, source, result)


def test_declared_defaults():
    """Counters and fast gauges every sweep; filesystem and vcpus 300 s."""
    declared = {ep.name: ep.load().interval for ep in
                importlib.metadata.entry_points(group=collectors_pkg.NAMESPACE)}
    assert declared == {'cpu': 0, 'memory': 0, 'load': 0, 'disk': 0,
                        'network': 0, 'users': 0, 'filesystem': 300,
                        'vcpus': 300}


def test_help_text_states_the_declared_defaults():
    """The option's help names every collector with what it declares."""
    text = ' '.join(conf_mod.option('qga_polling',
                                    'collector_intervals').help.split())
    declared = {ep.name: ep.load().interval for ep in
                importlib.metadata.entry_points(group=collectors_pkg.NAMESPACE)}
    for name, seconds in declared.items():
        if seconds:
            assert '%s %g' % (name, seconds) in text, name
    every_sweep = re.search(r'\); ([a-z, ]+) 0\. 0 means every sweep', text)
    assert every_sweep, text
    names = set(re.split(r', | and ', every_sweep.group(1)))
    assert names == {n for n, s in declared.items() if not s}


def test_intervals_are_declared_unless_overridden():
    conf = make_conf()
    collectors = load_collectors(conf)
    assert schedule.intervals(conf, collectors) == {
        'filesystem': 300, 'memory': 0, 'cpu': 0,
        'load': 0, 'disk': 0, 'network': 0,
        'users': 0, 'vcpus': 300}
    conf = make_conf(collector_intervals={'filesystem': '60', 'vcpus': '0',
                                          'cpu': '30.5'})
    got = schedule.intervals(conf, collectors)
    assert (got['filesystem'], got['vcpus'],
            got['cpu'], got['memory']) == (60, 0, 30.5, 0)


def test_an_override_of_a_collector_not_enabled_is_harmless():
    conf = make_conf(collectors=['cpu'],
                     collector_intervals={'filesystem': '60'})
    assert schedule.intervals(conf, load_collectors(conf)) == {
        'cpu': 0}


@pytest.mark.parametrize('value,words', [
    ({'filesystem': 'soon'}, 'filesystem:soon: not a number'),
    ({'filesystem': ''}, 'filesystem:: not a number'),
    ({'vcpus': '-1'}, 'vcpus:-1: negative'),
    ({'vcpus': 'nan'}, 'vcpus:nan: not a finite number'),
    ({'vcpus': 'inf'}, 'vcpus:inf: not a finite number'),
    ({'cpu': '0', 'vcpus': '-inf'}, 'vcpus:-inf: not a finite number'),
])
def test_bad_overrides_name_the_item(value, words):
    with pytest.raises(ValueError) as caught:
        schedule.overrides(value)
    assert str(caught.value) == words


def test_overrides_are_numbers():
    assert schedule.overrides({'filesystem': '60', 'vcpus': '0',
                               'cpu': '1.5'}) == {
        'filesystem': 60.0, 'vcpus': 0.0, 'cpu': 1.5}


def test_tolerance_is_half_the_sweep_interval():
    assert schedule.tolerance(make_conf(interval=60)) == 30


def test_first_sweep_runs_everything():
    plan = schedule.CollectorSchedule({FS: 300}, tolerance=30)
    assert plan.due(FS, generation=0, now=1000.0)
    assert plan.due('cpu', generation=0, now=1000.0)


def test_not_due_until_the_interval_less_the_tolerance():
    plan = schedule.CollectorSchedule({FS: 300}, tolerance=30)
    plan.record(outcome(), generation=1, now=1000.0)
    assert not plan.due(FS, 1, 1000.0)
    assert not plan.due(FS, 1, 1269.9)
    assert plan.due(FS, 1, 1270.0)


def test_sixty_second_sweeps_run_a_300_s_collector_every_fifth_sweep():
    """Sweeps start late by up to a few seconds; never every sixth."""
    plan = schedule.CollectorSchedule({FS: 300}, tolerance=30)
    ran = []
    for sweep in range(16):
        # late by 0 to 2.5 s, completing 0.4 s after the start
        start = sweep * 60 + (sweep % 6) * 0.5
        if plan.due(FS, 0, start):
            ran.append(sweep)
            plan.record(outcome(), 0, start + 0.4)
    assert ran == [0, 5, 10, 15]


def test_zero_means_every_sweep():
    plan = schedule.CollectorSchedule({FS: 0}, tolerance=30)
    plan.record(outcome(), 0, 1000.0)
    assert plan.due(FS, 0, 1000.0)


def test_a_collector_without_an_interval_runs_every_sweep():
    plan = schedule.CollectorSchedule(schedule.EVERY_SWEEP, tolerance=30)
    plan.record(outcome(), 0, 1000.0)
    assert plan.due(FS, 0, 1000.0)


def test_a_reconnect_makes_it_due():
    plan = schedule.CollectorSchedule({FS: 300}, tolerance=30)
    plan.record(outcome(), generation=1, now=1000.0)
    assert not plan.due(FS, 1, 1010.0)
    assert plan.due(FS, 2, 1010.0)


@pytest.mark.parametrize('failed', [
    outcome('skipped', readings=0),
    outcome('native', readings=0),       # every value dropped
    outcome('fallback', readings=0),
    outcome(schedule.NOT_DUE, readings=0),
])
def test_a_run_without_readings_is_retried_next_sweep(failed):
    plan = schedule.CollectorSchedule({FS: 300}, tolerance=30)
    plan.record(failed, 0, 1000.0)
    assert plan.due(FS, 0, 1001.0)
    # ... also when it had run well before: it is not rescheduled.
    plan.record(outcome(), 0, 1000.0)
    assert not plan.due(FS, 0, 1001.0)
    plan.record(failed, 0, 1300.0)
    assert plan.due(FS, 0, 1301.0)


def test_fallback_with_readings_counts_as_a_run():
    plan = schedule.CollectorSchedule({FS: 300}, tolerance=30)
    plan.record(outcome('fallback'), 0, 1000.0)
    assert not plan.due(FS, 0, 1001.0)


def test_not_due_outcome_is_empty_and_says_when():
    plan = schedule.CollectorSchedule({FS: 300}, tolerance=30)
    plan.record(outcome(), 0, 1000.0)
    rest = plan.not_due(FS, 1100.0)
    assert (rest.name, rest.source, rest.error_state) == (
        FS, schedule.NOT_DUE, None)
    assert rest.result.readings == [] and rest.result.dropped == []
    assert rest.reason == 'not due: every 300 s, due again in 170 s'


def test_intervals_are_per_collector():
    plan = schedule.CollectorSchedule({FS: 300, 'vcpus': 10},
                                      tolerance=2)
    plan.record(outcome(), 0, 1000.0)
    plan.record(outcome(name='vcpus'), 0, 1000.0)
    assert not plan.due(FS, 0, 1008.0)
    assert plan.due('vcpus', 0, 1008.0)
