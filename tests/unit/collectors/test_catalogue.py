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

"""The collectors, loaded as the engine loads them, give the meter catalogue."""

from stevedore import extension

from ceilometer_qga.collectors import base
from tests.unit.collectors import support

#: the meter catalogue (doc/source/architecture.rst), minus guest.agent.* (the engine's own meters)
CATALOGUE = {
    'guest.filesystem.used': ('gauge', 'B', 'filesystem'),
    'guest.filesystem.total': ('gauge', 'B', 'filesystem'),
    'guest.filesystem.usage': ('gauge', '%', 'filesystem'),
    'guest.memory.total': ('gauge', 'MiB', 'instance'),
    'guest.memory.available': ('gauge', 'MiB', 'instance'),
    'guest.memory.used': ('gauge', 'MiB', 'instance'),
    'guest.cpu.time': ('cumulative', 'ns', 'instance'),
    'guest.load.1': ('gauge', 'process', 'instance'),
    'guest.load.5': ('gauge', 'process', 'instance'),
    'guest.load.15': ('gauge', 'process', 'instance'),
    'guest.disk.read.bytes': ('cumulative', 'B', 'disk'),
    'guest.disk.write.bytes': ('cumulative', 'B', 'disk'),
    'guest.disk.read.requests': ('cumulative', 'request', 'disk'),
    'guest.disk.write.requests': ('cumulative', 'request', 'disk'),
    'guest.network.incoming.bytes': ('cumulative', 'B', 'interface'),
    'guest.network.outgoing.bytes': ('cumulative', 'B', 'interface'),
    'guest.network.incoming.packets': ('cumulative', 'packet', 'interface'),
    'guest.network.outgoing.packets': ('cumulative', 'packet', 'interface'),
    'guest.network.incoming.errors': ('cumulative', 'packet', 'interface'),
    'guest.network.outgoing.errors': ('cumulative', 'packet', 'interface'),
    'guest.network.incoming.drops': ('cumulative', 'packet', 'interface'),
    'guest.network.outgoing.drops': ('cumulative', 'packet', 'interface'),
    'guest.users': ('gauge', 'user', 'instance'),
    'guest.vcpus.online': ('gauge', 'vcpu', 'instance'),
}

ALLOWED_FILES = {'/proc/meminfo', '/proc/stat', '/proc/loadavg',
                 '/proc/diskstats', '/proc/net/dev', '/proc/mounts'}


def _load():
    return extension.ExtensionManager(
        'ceilometer_qga.collectors', invoke_on_load=True,
        invoke_args=(support.make_conf(),),
        on_load_failure_callback=_fail)


def _fail(manager, entrypoint, exc):
    raise exc


def test_every_entry_point_loads_a_collector():
    manager = _load()
    assert sorted(manager.names()) == sorted(
        ['filesystem', 'memory', 'cpu', 'load', 'disk', 'network', 'users',
         'vcpus'])
    for ext in manager:
        assert isinstance(ext.obj, base.Collector), ext.name


def test_meters_are_exactly_the_catalogue():
    found = {}
    for ext in _load():
        for meter in ext.obj.meters:
            assert meter.name not in found, meter
            found[meter.name] = (meter.type, meter.unit, meter.scope)
    assert found == CATALOGUE


def test_commands_are_read_only_and_fallbacks_allow_listed():
    from ceilometer_qga.qga import policy
    for ext in _load():
        collector = ext.obj
        assert collector.command or collector.fallback_file, ext.name
        if collector.command is not None:
            assert collector.command in policy.READ_ONLY_COMMANDS
        if collector.fallback_file is not None:
            assert collector.fallback_file in ALLOWED_FILES
            assert collector.fallback_file in policy.READABLE_FILES
        if collector.fallback_command is not None:
            assert collector.fallback_file is not None
            assert collector.fallback_command in policy.READ_ONLY_COMMANDS
    assert policy.READABLE_FILES == ALLOWED_FILES
