"""Per-guest isolation of sample building, signing and encoding (issue 9).

A value that slipped past every check (here a lone surrogate in a
reading's metadata, as a collector bug would let through) must cost only
its own guest's data for that sweep, never the sweep.  Pure: the poller's
output step on hand-made reports, no guest contacted.
"""

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga import conf as conf_mod
from ceilometer_qga.guest import Guest
from ceilometer_qga import poller as poller_mod
from ceilometer_qga import report as report_mod
from ceilometer_qga import sample as sample_mod
from ceilometer_qga.collectors import load_collectors


def make_poller():
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='qga-monitor-tests', default_config_files=[])
    return poller_mod.Poller(conf, discovery=None,
                             collectors=load_collectors(conf))


def report(uuid, load_md):
    guest = Guest(instance_id=uuid, name='instance-1', display_name=None,
                  project_id='p', user_id='u', metadata={})
    result = base.ParseResult([base.Reading('guest.load.1', 0.5, None, load_md)])
    return report_mod.GuestReport(
        guest, latency_ms=1.0,
        outcomes=[report_mod.CollectorOutcome('LoadCollector', 'native', result)])


def test_unencodable_guest_keeps_only_its_liveness_and_others_are_whole():
    poller = make_poller()
    bad, good = '00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002'
    out = {}
    for r in (report(bad, {'x': 'vm\ud800'}), report(good, {'x': 'vm'})):
        out[r.guest.instance_id] = poller._guest_output(r, 'ts', 1.0)
    samples, messages = out[bad]
    assert [s.name for s in samples] == ['guest.agent.up']
    assert samples[0].volume == 1
    assert samples[0].resource_metadata['agent_state'] == 'error'
    for message in messages:
        sample_mod.encode(message)
    samples, messages = out[good]
    assert [s.name for s in samples] == ['guest.agent.up', 'guest.agent.latency',
                                         'guest.load.1']
    assert len(messages) == 3 and all(m['message_signature'] for m in messages)


def test_drops_are_logged_once_per_incident(caplog):
    from ceilometer_qga import session as session_mod
    poller = make_poller()
    guest = report('00000000-0000-4000-8000-000000000003', {}).guest
    session = session_mod.GuestSession(guest, None, poller.conf)
    caplog.set_level('INFO', logger='ceilometer_qga.session')
    many = {'FilesystemCollector': ['bad %d' % i for i in range(10000)]}
    for _ in range(3):
        session.log_dropped(many)
    assert len(caplog.records) == 1
    assert caplog.records[0].levelname == 'WARNING'
    assert 'FilesystemCollector: 10000 (first: bad 0)' in caplog.records[0].getMessage()
    session.log_dropped({**many, 'NetworkCollector': ['x']})    # changed
    session.log_dropped({})                                     # ended
    session.log_dropped({})
    assert [r.levelname for r in caplog.records] == ['WARNING', 'WARNING', 'INFO']
