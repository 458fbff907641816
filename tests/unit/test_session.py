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

"""GuestSession (ceilometer_qga/session.py) with a scripted transport.

A stand-in transport, because what is under test is the session's own
logic -- the back-off after a guest-level failure, the freeze, the
once-per-incident logging of dropped values -- and a real agent cannot be
made to fail on cue within one test.  The replies are the shapes qemu-ga
7.2 sends (``qga/qapi-schema.json`` of QEMU 7.2: ``guest-info``,
``guest-fsfreeze-status``, ``guest-get-load``); the same paths against
real agents are in tests/functional/test_poller.py (frozen fake agent,
hung and absent sockets) and tests/e2e/test_poller_vm.py.  The clock is
given (``time.monotonic`` of the session module), never waited for.
"""

import asyncio

from oslo_config import cfg
import pytest

from ceilometer_qga.collectors import load_collectors
from ceilometer_qga import conf as conf_mod
from ceilometer_qga.guest import Channel
from ceilometer_qga.guest import Guest
from ceilometer_qga.qga import errors
from ceilometer_qga.qga import transport
from ceilometer_qga import session as session_mod

COMMANDS = ('guest-ping', 'guest-info', 'guest-fsfreeze-status',
            'guest-get-load')
#: what qemu-ga 7.2 still runs while frozen (``ga_freeze_allowlist``)
FREEZE_SAFE = ('guest-ping', 'guest-info', 'guest-fsfreeze-status')


class Scripted(transport.Transport):
    """Answers as qemu-ga 7.2 does, or fails as the test says; logs all."""

    kind = 'scripted'

    def __init__(self):
        super().__init__('g', 1.0)
        self.sent = []
        #: command -> exception to raise instead of answering
        self.failing = {}
        self.frozen = False

    async def _execute(self, command, arguments, timeout):
        self.sent.append(command)
        if command in self.failing:
            raise self.failing[command]
        if command == 'guest-info':
            # qemu-ga 7.2 while frozen: only the freeze-safe ones enabled
            return {'version': '7.2.0', 'supported_commands': [
                {'name': c, 'enabled': not self.frozen or c in FREEZE_SAFE}
                for c in COMMANDS]}
        if command == 'guest-fsfreeze-status':
            return 'frozen' if self.frozen else 'thawed'
        if self.frozen and command not in FREEZE_SAFE:
            raise errors.AgentFrozen(
                'g', command, 'Command %s has been disabled: the agent is '
                'in frozen state' % command)
        if command == 'guest-get-load':
            return {'load1': 0.5, 'load5': 0.25, 'load15': 0.125}
        return {}

    async def close(self):
        pass


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='qga-monitor-tests', default_config_files=[])
    conf.set_override('collectors', ['load'], 'qga_polling')
    conf.set_override('backoff_initial', 10.0, 'qga_polling')
    conf.set_override('backoff_max', 25.0, 'qga_polling')
    return conf


class Clock:
    def __init__(self, monkeypatch):
        self.now = 1000.0
        monkeypatch.setattr(session_mod.time, 'monotonic', lambda: self.now)


def make_session(conf):
    guest = Guest('00000000-0000-4000-8000-000000000001', 'instance-1',
                  channels=(Channel('org.openstack.monitor.0', '/x'),),
                  metadata={'state': 'running'})
    return session_mod.GuestSession(guest, Scripted(), conf,
                                    channel=guest.channels[0])


def sweep(session, conf):
    return asyncio.run(session.sweep(load_collectors(conf),
                                     asyncio.Semaphore(1), 30.0))


def test_a_good_sweep_reports_how_the_guest_was_reached(conf, monkeypatch):
    Clock(monkeypatch)
    session = make_session(conf)
    report = sweep(session, conf)
    assert report.state == 'ok' and report.up
    assert report.transport_kind == 'scripted'
    assert report.channel.target_name == 'org.openstack.monitor.0'
    assert report.capabilities.version == '7.2.0'
    [outcome] = report.outcomes
    assert (outcome.name, outcome.source) == ('load', 'native')
    # One ping, one guest-info, then the batch: freeze status + native.
    assert session.transport.sent == ['guest-ping', 'guest-info',
                                      'guest-fsfreeze-status',
                                      'guest-get-load']


def test_backoff_doubles_up_to_the_cap_and_success_forgets_it(
        conf, monkeypatch):
    clock = Clock(monkeypatch)
    session = make_session(conf)
    tr = session.transport
    tr.failing['guest-ping'] = errors.AgentTimeout('g', 'guest-ping', 'slow')
    delays = []
    for _ in range(3):
        report = sweep(session, conf)
        assert report.state == 'timeout' and not report.up
        delays.append(session.next_attempt - clock.now)
        # Within the back-off the guest is not contacted at all.
        sent = len(tr.sent)
        clock.now = session.next_attempt - 0.1
        assert sweep(session, conf).state == 'backoff'
        assert len(tr.sent) == sent
        clock.now = session.next_attempt
    assert delays == [10.0, 20.0, 25.0]
    del tr.failing['guest-ping']
    assert sweep(session, conf).state == 'ok'
    assert (session.failures, session.next_attempt) == (0, 0.0)


def test_a_per_command_failure_is_no_guest_failure(conf, monkeypatch):
    Clock(monkeypatch)
    session = make_session(conf)
    session.transport.failing['guest-get-load'] = errors.CommandFailed(
        'g', 'guest-get-load', 'no')
    report = sweep(session, conf)
    assert report.state == 'ok' and session.failures == 0
    [outcome] = report.outcomes
    assert outcome.source == 'skipped'
    assert outcome.error_state == 'command_failed'


def test_frozen_guest_is_alive_sends_no_data_command_and_rereads_caps(
        conf, monkeypatch):
    Clock(monkeypatch)
    session = make_session(conf)
    tr = session.transport
    assert sweep(session, conf).state == 'ok'
    tr.frozen = True
    tr.sent.clear()
    report = sweep(session, conf)
    # Capabilities were cached (read while thawed): the batch asked the
    # status first and every data command of it was refused.
    assert report.state == 'frozen' and report.up
    assert session.failures == 0
    [outcome] = report.outcomes
    assert (outcome.source, outcome.error_state) == ('skipped', 'frozen')
    assert not outcome.result.readings
    # Read during the freeze: guest-info is asked again next sweep.
    tr.sent.clear()
    report = sweep(session, conf)
    assert report.state == 'frozen'
    assert tr.sent[:2] == ['guest-ping', 'guest-info']
    assert 'guest-get-load' not in tr.sent  # guest-info says disabled
    tr.frozen = False
    tr.sent.clear()
    report = sweep(session, conf)
    assert report.state == 'ok'
    assert tr.sent[:2] == ['guest-ping', 'guest-info']  # thawed: re-read
    assert report.outcomes[0].source == 'native'


def test_drop_incident_survives_a_collector_resting(conf, caplog):
    session = make_session(conf)
    caplog.set_level('DEBUG', logger='ceilometer_qga.session')
    session.log_dropped({'filesystem': ['bad']})
    # filesystem not due this sweep: it dropped nothing because it did not
    # run, which is no end of the incident.
    session._not_due = frozenset({'filesystem'})
    session.log_dropped({})
    session._not_due = frozenset()
    session.log_dropped({'filesystem': ['bad']})
    levels = [r.levelname for r in caplog.records]
    assert levels == ['WARNING', 'DEBUG']  # no INFO: not ended, no 2nd WARNING
    session.log_dropped({})
    assert caplog.records[-1].levelname == 'INFO'
    assert 'no more invalid values' in caplog.records[-1].getMessage()
