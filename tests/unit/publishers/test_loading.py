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

"""load_publishers: URLs of ``[qga_polling] publishers`` to publisher objects.

The plugins are found through the real ``ceilometer_qga.publishers`` entry
points of the installed package.  Building a notifier publisher connects
to nothing, so no broker is needed here.
"""

from __future__ import annotations

import pytest

from ceilometer_qga import publishers
from ceilometer_qga.publishers import file as file_pub
from ceilometer_qga.publishers import notifier


def test_default_is_the_notifier(make_conf):
    [pub] = publishers.load_publishers(make_conf())
    assert isinstance(pub, notifier.NotifierPublisher)
    assert pub.describe().startswith('notifier://')
    pub.close()


def test_one_publisher_per_url_in_order(make_conf, tmp_path):
    path = tmp_path / 'samples.jsonl'
    conf = make_conf({'qga_polling': {
        'publishers': 'file://%s, notifier://?topic=metering' % path}})
    pubs = publishers.load_publishers(conf)
    assert [type(p) for p in pubs] == [file_pub.FilePublisher,
                                       notifier.NotifierPublisher]
    assert pubs[0].path == str(path)
    assert pubs[1].topics == ['metering']
    for pub in pubs:
        pub.close()


def test_empty_list_means_no_publisher(make_conf):
    assert publishers.load_publishers(
        make_conf({'qga_polling': {'publishers': ''}})) == []


@pytest.mark.parametrize('url, reason', [
    ('kafka://broker:9092', "scheme = 'kafka': no such publisher; known: file, "
                            "notifier"),
    ('/var/lib/qga/samples.jsonl', 'no scheme'),
    ('file://[::1/samples', 'Invalid IPv6 URL'),
    ('notifier://?topic', 'malformed query'),
])
def test_bad_url_names_the_option_and_the_url(make_conf, url, reason):
    conf = make_conf({'qga_polling': {'publishers': url}})
    with pytest.raises(ValueError) as info:
        publishers.load_publishers(conf)
    message = str(info.value)
    assert message.startswith('[qga_polling] publishers: bad publisher URL')
    assert url.split('?')[0] in message
    assert reason in message


def test_bad_second_url_fails_the_whole_list(make_conf, tmp_path):
    conf = make_conf({'qga_polling': {
        'publishers': 'file://%s/a.jsonl, file:relative' % tmp_path}})
    with pytest.raises(ValueError, match='file:relative'):
        publishers.load_publishers(conf)
