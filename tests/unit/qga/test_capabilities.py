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

"""guest-info parsing: the capability oracle must survive any reply."""

from hypothesis import given
from hypothesis import strategies as st

from ceilometer_qga import freeze
from ceilometer_qga.qga import capabilities

REAL_72 = {
    'version': '7.2.22',
    'supported_commands': [
        {'enabled': True, 'name': 'guest-get-fsinfo',
         'success-response': True},
        {'enabled': False, 'name': 'guest-exec', 'success-response': True},
        {'enabled': True, 'name': 'guest-ping', 'success-response': True},
        {'enabled': False, 'name': 'guest-get-devices',
         'success-response': True},
    ]}


def test_real_reply():
    caps = capabilities.parse_guest_info(REAL_72)
    assert caps.version == '7.2.22'
    assert caps.enabled == {'guest-get-fsinfo', 'guest-ping'}
    assert caps.disabled == {'guest-exec', 'guest-get-devices'}
    assert caps.supports('guest-ping')
    assert not caps.supports('guest-exec')
    assert not caps.supports('guest-get-load')  # absent altogether
    assert caps.supports_all(('guest-ping', 'guest-get-fsinfo'))
    assert not caps.supports_all(('guest-ping', 'guest-exec'))


def test_enabled_must_be_true_not_truthy():
    caps = capabilities.parse_guest_info({'supported_commands': [
        {'name': 'a', 'enabled': 1}, {'name': 'b', 'enabled': 'yes'},
        {'name': 'c'}, {'name': 'd', 'enabled': True}]})
    assert caps.enabled == {'d'}
    assert caps.disabled == {'a', 'b', 'c'}


def test_garbage_gives_empty_capabilities():
    for reply in (None, [], 'x', 42, {'supported_commands': 'all'},
                  {'version': 7, 'supported_commands': [None, 1, 'x',
                                                        {'name': 5}]}):
        caps = capabilities.parse_guest_info(reply)
        assert caps.enabled == frozenset()
        assert caps.version is None


def test_huge_lists_are_truncated():
    reply = {'supported_commands': [{'name': 'c%d' % i, 'enabled': True}
                                    for i in range(100000)]}
    assert len(capabilities.parse_guest_info(reply).enabled) == 1024


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(),
                                                          children),
    max_leaves=30)


@given(json_values)
def test_never_raises(reply):
    caps = capabilities.parse_guest_info(reply)
    assert all(isinstance(c, str) for c in caps.enabled | caps.disabled)


def _info(enabled, disabled=()):
    return {'version': '7.2.22', 'supported_commands': (
        [{'name': n, 'enabled': True} for n in enabled]
        + [{'name': n, 'enabled': False} for n in disabled])}


def test_frozen_agent_looks_frozen_and_others_do_not():
    # what qemu-ga 7.2 lists after guest-fsfreeze-freeze (ga_set_frozen)
    frozen = capabilities.parse_guest_info(_info(
        freeze.SAFE, ('guest-get-fsinfo', 'guest-get-osinfo')))
    assert freeze.looks_frozen(frozen)
    assert not freeze.looks_frozen(capabilities.parse_guest_info(REAL_72))
    assert not freeze.looks_frozen(capabilities.parse_guest_info(_info(())))
    # an agent allowing only pings (--allow-rpcs) but listing nothing else
    assert not freeze.looks_frozen(
        capabilities.parse_guest_info(_info(('guest-ping',))))


def test_version_with_a_lone_surrogate_is_mended():
    caps = capabilities.parse_guest_info({'version': '7.2\ud800'})
    assert caps.version == '7.2\ufffd'
    caps.version.encode('utf-8')
