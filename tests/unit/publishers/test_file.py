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

"""FilePublisher: JSON lines on a real filesystem, and real write failures.

Failures are produced for real, not simulated: a directory where the file
should be (EISDIR), a regular file where its directory should be (ENOTDIR),
and ``/dev/full`` (ENOSPC); a write cut half-way by ``RLIMIT_FSIZE`` needs
a child process and is in tests/functional/test_file_publisher_limits.py.
Root ignores permission bits, so permissions are not used to make a path
unwritable.
"""

from __future__ import annotations

import json
import pathlib
import stat
import urllib.parse

import pytest

from ceilometer_qga.publishers import file as file_pub
from ceilometer_qga import sample

SECRET = 'change this for valid signing'


def _messages(start: int, stop: int) -> list[dict]:
    return [sample.to_message(sample.Sample(
        name='guest.filesystem.used', type='gauge', unit='B', volume=n,
        user_id='u', project_id='p', resource_id='vm-%d' % n,
        timestamp='2026-08-22T10:00:00', resource_metadata={'n': n}), SECRET)
        for n in range(start, stop)]


def _read(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _publisher(conf, url: str) -> file_pub.FilePublisher:
    return file_pub.FilePublisher(conf, urllib.parse.urlsplit(url))


@pytest.fixture
def conf(make_conf):
    return make_conf({'qga_polling': {'buffer_size': 50}})


def test_writes_one_json_object_per_line(conf, tmp_path):
    path = tmp_path / 'new' / 'dir' / 'samples.jsonl'
    pub = _publisher(conf, 'file://%s' % path)
    messages = _messages(0, 3)
    pub.publish(messages[:2])
    pub.publish(messages[2:])
    assert pub.flush(5.0)
    assert _read(path) == messages
    # Same key order as on the bus.
    assert [list(m) for m in _read(path)] == [list(m) for m in messages]
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0
    assert (pub.published, pub.dropped, pub.buffered) == (3, 0, 0)
    pub.close()


def test_rotates_to_dot_one(conf, tmp_path):
    path = tmp_path / 'samples.jsonl'
    line = len(json.dumps(_messages(0, 1)[0])) + 1
    pub = _publisher(conf, 'file://%s?max_bytes=%d' % (path, 2 * line + 10))
    messages = _messages(0, 5)
    for message in messages:
        pub.publish([message])
    # Two lines fit; the third starts a new file, twice over.
    assert _read(pathlib.Path(str(path) + '.1')) == messages[2:4]
    assert _read(path) == messages[4:]
    assert path.stat().st_size <= 2 * line + 10
    pub.close()


@pytest.mark.parametrize('blocker', ['directory at the path',
                                     'file at the parent'])
def test_unwritable_path_buffers_and_recovers(conf, tmp_path, blocker):
    parent = tmp_path / 'out'
    path = parent / 'samples.jsonl'
    if blocker == 'directory at the path':
        path.mkdir(parents=True)
    else:
        parent.write_text('in the way')
    pub = _publisher(conf, 'file://%s' % path)
    messages = _messages(0, 30)
    pub.publish(messages[:20])
    pub.publish(messages[20:])
    assert (pub.published, pub.buffered, pub.dropped) == (0, 30, 0)
    assert not pub.flush(1.0)

    if blocker == 'directory at the path':
        path.rmdir()
    else:
        parent.unlink()
    assert pub.flush(5.0)
    assert _read(path) == messages
    pub.close()


def test_unwritable_path_overflow_counts_drops(make_conf, tmp_path):
    path = tmp_path / 'samples.jsonl'
    path.mkdir()
    pub = _publisher(make_conf({'qga_polling': {'buffer_size': 8}}),
                     'file://%s' % path)
    messages = _messages(0, 20)
    for start in range(0, 20, 5):
        pub.publish(messages[start:start + 5])
    assert (pub.buffered, pub.dropped) == (8, 12)
    path.rmdir()
    assert pub.flush(5.0)
    assert _read(path) == messages[12:]


def test_full_disk_buffers(conf):
    pub = _publisher(conf, 'file:///dev/full')
    pub.publish(_messages(0, 4))
    assert (pub.published, pub.buffered, pub.dropped) == (0, 4, 0)
    pub.close()


def test_hold_off_waits_for_flush(conf, tmp_path):
    path = tmp_path / 'samples.jsonl'
    path.mkdir()
    pub = _publisher(conf, 'file://%s?hold_off=3600' % path)
    messages = _messages(0, 4)
    pub.publish(messages[:2])
    path.rmdir()
    pub.publish(messages[2:])
    assert not path.exists(), 'publish() wrote while holding off'
    assert pub.flush(5.0)
    assert _read(path) == messages


def test_starts_a_new_file_when_moved_away(conf, tmp_path):
    path = tmp_path / 'samples.jsonl'
    moved = tmp_path / 'samples.jsonl.old'
    pub = _publisher(conf, 'file://%s' % path)
    messages = _messages(0, 4)
    pub.publish(messages[:2])
    path.rename(moved)
    pub.publish(messages[2:])
    assert _read(moved) == messages[:2]
    assert _read(path) == messages[2:]
    pub.close()


@pytest.mark.parametrize('url, reason', [
    ('file://', 'path is missing'),
    ('file:relative/samples.jsonl', 'absolute'),
    ('file://var/lib/samples.jsonl', 'no host'),
    ('file:///var/lib/qga/', 'absolute file name'),
    ('file:///tmp/s.jsonl?max_bytes=ten', 'not an integer'),
    ('file:///tmp/s.jsonl?max_bytes=-1', 'at least 0'),
    ('file:///tmp/s.jsonl?backup_count=3', 'unknown parameter'),
    ('file:///tmp/s.jsonl?hold_off=nan', 'finite number'),
])
def test_bad_url_names_the_option(conf, url, reason):
    with pytest.raises(ValueError) as info:
        _publisher(conf, url)
    message = str(info.value)
    assert '[qga_polling] publishers' in message
    assert url.split('?')[0] in message
    assert reason in message
