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

"""Per-guest isolation of sample building, signing and encoding.

A value that slipped past every check (here a lone surrogate in a
reading's metadata, as a collector bug would let through) must cost only
its own guest's data for that sweep, never the sweep.  Pure: the poller's
building step and the publishing side's signing on hand-made reports, no
guest contacted.
"""

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import load_collectors
from ceilometer_qga import conf as conf_mod
from ceilometer_qga.guest import Guest
from ceilometer_qga import pipeline
from ceilometer_qga import poller as poller_mod
from ceilometer_qga import report as report_mod
from ceilometer_qga import sample as sample_mod


def make_poller():
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='qga-monitor-tests', default_config_files=[])
    return poller_mod.Poller(conf, collectors=load_collectors(conf))


def report(uuid, load_md):
    guest = Guest(instance_id=uuid, name='instance-1', display_name=None,
                  project_id='p', user_id='u', metadata={})
    result = base.ParseResult([base.Reading('guest.load.1', 0.5, None, load_md)])
    return report_mod.GuestReport(
        guest, latency_ms=1.0,
        outcomes=[report_mod.CollectorOutcome('load', 'native', result)])


def test_unencodable_guest_keeps_only_its_liveness_and_others_are_whole():
    poller = make_poller()
    bad, good = '00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002'
    reports = [report(bad, {'x': 'vm\ud800'}), report(good, {'x': 'vm'})]
    for r in reports:
        poller._build(r, 'ts', 1.0)
    result = poller_mod.SweepResult(reports, [s for r in reports
                                              for s in r.samples], 0.0)
    messages = pipeline.messages(poller, result, 'secret')
    samples = reports[0].samples
    assert [s.name for s in samples] == ['guest.agent.up']
    assert samples[0].volume == 1
    assert samples[0].resource_metadata['agent_state'] == 'error'
    assert samples[0].timestamp == 'ts'
    for message in messages:
        sample_mod.encode(message)
    assert [s.name for s in reports[1].samples] == [
        'guest.agent.up', 'guest.agent.latency', 'guest.load.1']
    assert result.samples == reports[0].samples + reports[1].samples
    assert [m['resource_id'] for m in messages] == [bad] + [good] * 3
    assert all(m['message_signature'] for m in messages)
    # Without a secret (the pollsters: Ceilometer signs) nothing is signed,
    # and the encoding check still isolates the guest.
    bad_again = report(bad, {'x': 'vm\ud800'})
    poller._build(bad_again, 'ts', 1.0)
    result = poller_mod.SweepResult([bad_again], bad_again.samples, 0.0)
    messages = pipeline.messages(poller, result, None)
    assert [m['counter_name'] for m in messages] == ['guest.agent.up']
    assert messages[0]['message_signature'] == ''


def test_drops_are_logged_once_per_incident(caplog):
    from ceilometer_qga import session as session_mod
    poller = make_poller()
    guest = report('00000000-0000-4000-8000-000000000003', {}).guest
    session = session_mod.GuestSession(guest, None, poller.conf)
    caplog.set_level('INFO', logger='ceilometer_qga.session')
    many = {'filesystem': ['bad %d' % i for i in range(10000)]}
    for _ in range(3):
        session.log_dropped(many)
    assert len(caplog.records) == 1
    assert caplog.records[0].levelname == 'WARNING'
    assert 'filesystem: 10000 (first: bad 0)' in caplog.records[0].getMessage()
    session.log_dropped({**many, 'network': ['x']})    # changed
    session.log_dropped({})                                     # ended
    session.log_dropped({})
    assert [r.levelname for r in caplog.records] == ['WARNING', 'WARNING', 'INFO']
