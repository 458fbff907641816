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

"""OS facts for resource_metadata, from real and hand-written replies."""

import pytest

from ceilometer_qga.qga import os_facts as osfacts
from tests.unit.collectors import support


def test_real_linux_osinfo():
    assert osfacts.parse_osinfo(support.load_json('osinfo.json')) == {
        'os_id': 'debian',
        'os_name': 'Debian GNU/Linux',
        'os_version': '12',
        'os_pretty_name': 'Debian GNU/Linux 12 (bookworm)',
        'kernel_release': '6.18.44-fc-v595',
        'kernel_version': '#1 SMP PREEMPT_DYNAMIC @0',
        'machine': 'x86_64',
    }


def test_windows_osinfo():
    facts = osfacts.parse_osinfo(support.load_json('osinfo_windows.json'))
    assert facts['os_id'] == 'mswindows'
    assert facts['os_version'] == '2019'
    assert facts['os_pretty_name'] == 'Windows Server 2019 Standard'
    assert facts['kernel_release'] == '17763'
    # members the catalogue does not name stay out
    assert set(facts) == {key for _member, key in osfacts.OSINFO_KEYS}


def test_real_hostname():
    assert osfacts.parse_hostname(support.load_json('hostname.json')) == {
        'guest_hostname': 'vm'}


@pytest.mark.parametrize('reply', [None, [], 'debian', 3, True,
                                   {'error': {'class': 'GenericError'}}])
def test_unusable_reply_gives_no_facts(reply):
    assert osfacts.parse_osinfo(reply) == {}
    assert osfacts.parse_hostname(reply) == {}


def test_only_non_empty_strings_are_kept_and_cut_to_255():
    facts = osfacts.parse_osinfo({
        'id': 'alpine', 'name': 7, 'version-id': None, 'pretty-name': '',
        'kernel-release': 'r' * 1000, 'machine': ['x86_64']})
    assert facts == {'os_id': 'alpine', 'kernel_release': 'r' * 255}
    assert osfacts.parse_hostname({'host-name': 'h' * 300}) == {
        'guest_hostname': 'h' * 255}
    assert osfacts.parse_hostname({'host-name': 12}) == {}
    assert osfacts.parse_hostname({'host-name': ''}) == {}
