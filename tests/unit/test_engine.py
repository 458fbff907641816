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

"""The engine's fallback decision, from capabilities, OS facts and options.

Pure parts only; the engine running against agents is in
``tests/functional/test_version_matrix.py`` (real qemu-ga 5.2 and 7.2, and
recorded agents replayed by the fake agent).
"""

from ceilometer_qga.collectors import disk
from ceilometer_qga.collectors import filesystem
from ceilometer_qga.collectors import memory
from ceilometer_qga import engine
from ceilometer_qga.qga import capabilities
from ceilometer_qga.qga import os_facts
from tests.unit.collectors import support

FILES = set(engine.FILE_COMMANDS)
LINUX = {'os_id': 'debian'}
WINDOWS = {'os_id': 'mswindows'}


def _caps(*commands):
    return capabilities.Capabilities('x', frozenset(commands), frozenset())


def test_windows_guests_get_no_proc_fallback():
    conf = support.make_conf()
    caps = _caps(*FILES)
    for collector in (memory.MemoryCollector(conf), disk.DiskCollector(conf)):
        assert engine.fallback_blocker(collector, caps, LINUX, conf) is None
        # Unknown OS (an agent without guest-get-osinfo): taken for Linux.
        assert engine.fallback_blocker(collector, caps, {}, conf) is None
        reason = engine.fallback_blocker(collector, caps, WINDOWS, conf)
        assert reason == 'no %s on a mswindows guest' % collector.fallback_file
    assert not os_facts.has_proc(WINDOWS) and os_facts.has_proc(LINUX)


def test_blockers_name_the_option_or_the_missing_command():
    conf = support.make_conf(allow_file_reads=False)
    fs = filesystem.FilesystemCollector(conf)
    assert 'allow_file_reads' in engine.fallback_blocker(
        fs, _caps(*FILES), LINUX, conf)
    conf = support.make_conf()
    fs = filesystem.FilesystemCollector(conf)
    assert engine.fallback_blocker(fs, _caps('guest-file-open'), LINUX,
                                   conf) == (
        'guest-file-* not offered for /proc/mounts')
    assert engine.fallback_blocker(fs, _caps(*FILES), LINUX, conf) == (
        'guest-get-statvfs not offered for /proc/mounts')
    assert engine.fallback_blocker(
        fs, _caps(*FILES, 'guest-get-statvfs'), LINUX, conf) is None
