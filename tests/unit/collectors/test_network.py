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

"""NetworkCollector on a real qemu-ga 7.2 interface list and on nonsense."""

import pytest

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors import network
from tests.unit.collectors import support

KEYS = {
    'guest.network.incoming.bytes': 'rx-bytes',
    'guest.network.outgoing.bytes': 'tx-bytes',
    'guest.network.incoming.packets': 'rx-packets',
    'guest.network.outgoing.packets': 'tx-packets',
    'guest.network.incoming.errors': 'rx-errs',
    'guest.network.outgoing.errors': 'tx-errs',
    'guest.network.incoming.drops': 'rx-dropped',
    'guest.network.outgoing.drops': 'tx-dropped',
}


def _collector(exclude=None, **polling):
    conf = support.make_conf(**polling)
    if exclude is not None:
        conf.set_override('exclude', exclude, 'network_collector')
    return network.NetworkCollector(conf)


def _iface(name='eth1', **stats):
    values = dict.fromkeys(KEYS.values(), 1)
    values.update(stats)
    return {'name': name, 'hardware-address': '52:54:00:12:34:56',
            'ip-addresses': [{'ip-address': '10.0.0.5',
                              'ip-address-type': 'ipv4', 'prefix': 24}],
            'statistics': {k: v for k, v in values.items() if v is not None}}


def test_real_capture_reports_eth0_only():
    """lo is excluded by default; ifb0/ifb1 have no statistics."""
    collector = _collector()
    reply = support.load_json('network.json')
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert result.dropped == []
    assert support.items(result) == ['eth0']
    stats = [i for i in reply if i['name'] == 'eth0'][0]['statistics']
    assert support.by_meter(result, 'eth0') == {
        meter: stats[key] for meter, key in KEYS.items()}
    assert support.by_meter(result, 'eth0')[
        'guest.network.incoming.bytes'] > 0
    for reading in result.readings:
        assert reading.metadata == {
            'vnic_name': 'eth0', 'mac': '02:fc:00:00:00:01',
            'ip_addresses': ['192.0.2.2', 'fd00::2', 'fe80::fc:ff:fe00:1']}


def test_empty_exclusion_reports_loopback_too():
    result = _collector(exclude='').parse(
        support.load_json('network.json'))
    assert support.items(result) == ['lo', 'eth0']


def test_interface_without_statistics_is_skipped_quietly():
    entry = _iface()
    del entry['statistics']
    result = _collector().parse([entry])
    assert result.readings == [] and result.dropped == []


def test_metadata_is_bounded_and_tolerates_junk():
    entry = _iface()
    entry['hardware-address'] = 5
    entry['ip-addresses'] = (['junk', {'ip-address': 7}] + [
        {'ip-address': '10.0.0.%d' % i} for i in range(40)])
    result = _collector().parse([entry])
    metadata = result.readings[0].metadata
    assert 'mac' not in metadata
    assert metadata['ip_addresses'] == ['10.0.0.%d' % i for i in range(16)]


def test_cap_applies_after_exclusion():
    collector = _collector(max_items=2)
    reply = [_iface('lo')] + [_iface('eth%d' % i) for i in range(4)]
    result = collector.parse(reply)
    support.assert_sane(collector, result)
    assert support.items(result) == ['eth0', 'eth1']
    assert result.dropped == [
        '2 interfaces over [qga_polling] max_items=2 left out']


@pytest.mark.parametrize('entry, reason', [
    (42, 'interface #0 is not an object'),
    (dict(_iface(), name=None), 'name of interface #0 is not a string'),
    (dict(_iface(), name='e\tth'), 'control characters'),
    (dict(_iface(), statistics='lots'),
     "interface 'eth1' has no statistics object"),
])
def test_unusable_interface_is_dropped_with_a_reason(entry, reason):
    collector = _collector()
    result = collector.parse([entry, _iface('eth9')])
    support.assert_sane(collector, result)
    assert support.items(result) == ['eth9']
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


@pytest.mark.parametrize('stats, reason', [
    ({'rx-bytes': None}, "interface 'eth1' rx-bytes is missing"),
    ({'tx-packets': -4}, "interface 'eth1' tx-packets is negative"),
    ({'rx-errs': False}, "interface 'eth1' rx-errs is not a number"),
    ({'tx-dropped': 2 ** 64}, "interface 'eth1' tx-dropped is absurdly large"),
    ({'rx-dropped': 0.5}, "interface 'eth1' rx-dropped is not an integer"),
])
def test_one_bad_counter_drops_only_that_meter(stats, reason):
    collector = _collector()
    result = collector.parse([_iface(**stats)])
    support.assert_sane(collector, result)
    assert len(support.by_meter(result, 'eth1')) == 7
    assert len(result.dropped) == 1
    assert reason in result.dropped[0]


def test_duplicate_interface_keeps_the_first():
    result = _collector().parse([_iface('eth1', **{'rx-bytes': 5}),
                                 _iface('eth1', **{'rx-bytes': 6})])
    assert support.by_meter(result, 'eth1')[
        'guest.network.incoming.bytes'] == 5
    assert result.dropped == ["interface 'eth1' is listed twice"]


@pytest.mark.parametrize('reply', [None, {}, 'eth0', 3.0])
def test_reply_that_is_not_a_list_is_a_bad_reply(reply):
    with pytest.raises(base.BadReply, match='guest-network-get-interfaces'):
        _collector().parse(reply)
