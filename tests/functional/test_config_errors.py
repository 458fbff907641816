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

"""Bad configuration, as an operator meets it: the console scripts as processes.

Every case runs the installed ``qga-polling`` (``--once`` and the service
mode) or ``qga-probe`` in its own process and asserts what the operator
sees: exit code 2, a line naming the option and what it accepts, and no
traceback.  Nothing is mocked; no guest or broker is needed, because the
configuration is refused before anything is contacted.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.functional

BINDIR = os.path.dirname(sys.executable)
POLLING = os.path.join(BINDIR, 'qga-polling')
PROBE = os.path.join(BINDIR, 'qga-probe')
UUID = '33333333-3333-4333-8333-000000000001'


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix='qgacfg', dir='/tmp')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_conf(workdir, qga_polling='', default='', other=''):
    """A working static-discovery file configuration plus the given lines.

    The extra ``[qga_polling]`` lines come last in their section, so that
    they win over the defaults written here (oslo.config: last one wins).
    """
    path = os.path.join(workdir, 'qga-polling.conf')
    with open(path, 'w') as f:
        f.write(f"""[DEFAULT]
{default}
[qga_polling]
discovery = static
transport = socket
publishers = file://{workdir}/samples.jsonl
interval = 1
{qga_polling}
[static_discovery]
guests = {UUID}={workdir}/absent.sock
{other}
""")
    return path


def run(argv, timeout=60):
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout)


def assert_config_error(proc, *words):
    """Exit 2, the words in stderr, and no traceback anywhere."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)
    assert 'Traceback' not in proc.stderr + proc.stdout
    assert 'CRITICAL' not in proc.stderr


#: (lines in [qga_polling], what the error line must say)
BAD_POLLING = [
    ('command_timeout = -1', ['[qga_polling] command_timeout',
                              'from 0.01 to 3600']),
    ('guest_budget = 0', ['[qga_polling] guest_budget', 'from 0.05 to 86400']),
    ('command_timeout = nan', ['[qga_polling] command_timeout = nan',
                               'not a finite number']),
    ('guest_budget = inf', ['[qga_polling] guest_budget', 'from 0.05']),
    ('command_timeout = inf\nguest_budget = inf',
     ['[qga_polling] command_timeout', 'finite']),
    ('backoff_max = nan', ['[qga_polling] backoff_max = nan']),
    ('shutdown_timeout = -inf', ['[qga_polling] shutdown_timeout']),
    ('interval = 0', ['[qga_polling] interval', 'an integer >= 1']),
    ('max_items = many', ['[qga_polling] max_items', 'an integer']),
    ('transport = bogus', ['[qga_polling] transport',
                           'one of: socket, libvirt, auto']),
    ('allow_file_reads = perhaps', ['[qga_polling] allow_file_reads',
                                    'true or false']),
    ('collectors = memory,nosuch', ['[qga_polling] collectors', 'nosuch']),
    ('collector_intervals = filesystem:60,nosuch:5',
     ["[qga_polling] collector_intervals = 'nosuch'", 'no such collector',
      'known: cpu, disk, filesystem']),
    ('collector_intervals = filesystem:soon',
     ['[qga_polling] collector_intervals = filesystem:soon: not a number',
      'a finite number >= 0']),
    ('collector_intervals = vcpus:-1',
     ['[qga_polling] collector_intervals = vcpus:-1: negative']),
    ('collector_intervals = filesystem:nan',
     ['[qga_polling] collector_intervals = filesystem:nan: not a finite']),
    ('collector_intervals = filesystem:0,vcpus:inf',
     ['[qga_polling] collector_intervals = vcpus:inf: not a finite']),
    ('collector_intervals = filesystem',
     ['[qga_polling] collector_intervals', 'KEY:VALUE items']),
]


@pytest.mark.parametrize('lines,words', BAD_POLLING,
                         ids=[b[0].split()[0] + '=' + b[0].split()[-1]
                              for b in BAD_POLLING])
@pytest.mark.parametrize('mode', ['once', 'service'])
def test_bad_value_is_one_line_naming_the_option(workdir, lines, words,
                                                 mode):
    conf = write_conf(workdir, qga_polling=lines)
    argv = [POLLING, '--config-file', conf]
    if mode == 'once':
        argv.append('--once')
    # The service mode must refuse before forking its worker: it exits.
    proc = run(argv, timeout=30)
    assert_config_error(proc, 'configuration error', *words)
    assert not os.path.exists(os.path.join(workdir, 'samples.jsonl'))


@pytest.mark.parametrize('section', ['libvirt_transport',
                                     # its name before it moved
                                     'libvirt_discovery'])
def test_bad_value_in_another_section(workdir, section):
    proc = run([POLLING, '--config-file',
                write_conf(workdir, other='[%s]\nmax_threads = -2' % section),
                '--once'])
    assert_config_error(proc, '[libvirt_transport] max_threads (formerly '
                        '[libvirt_discovery] max_threads)', 'an integer >= 1')


@pytest.mark.parametrize('polling,other', [
    ('', '[disk_collector]\nexclude = ('),
    ('disk_exclude = (', '')])
def test_bad_plugin_option(workdir, polling, other):
    """A plugin's own option, under its name or the one it had before it
    moved to the plugin's group: one line naming it.
    """
    proc = run([POLLING, '--config-file',
                write_conf(workdir, qga_polling=polling, other=other),
                '--once'])
    assert_config_error(proc, "[disk_collector] exclude = '(' is not a "
                        "valid regular expression")


@pytest.mark.parametrize('mode', ['once', 'service'])
def test_missing_config_file(workdir, mode):
    argv = [POLLING, '--config-file', os.path.join(workdir, 'nosuch.conf')]
    if mode == 'once':
        argv.append('--once')
    proc = run(argv, timeout=30)
    assert_config_error(proc, 'nosuch.conf')


def test_unparseable_config_file(workdir):
    path = os.path.join(workdir, 'broken.conf')
    with open(path, 'w') as f:
        f.write('[qga_polling\ninterval = 1\n')
    proc = run([POLLING, '--config-file', path, '--once'])
    assert_config_error(proc, 'broken.conf')


@pytest.mark.parametrize('url', [
    'rabbit://guest:s3cret@[::1:5672/',
    'rabbit://guest:s3cret@127.0.0.1:notaport/',
    'nosuchdriver://127.0.0.1/',
])
@pytest.mark.parametrize('mode', ['once', 'service'])
def test_malformed_transport_url_names_the_option(workdir, url, mode):
    conf = write_conf(workdir, default='transport_url = ' + url,
                      qga_polling='publishers = notifier://')
    proc = run([POLLING, '--config-file', conf]
               + (['--once'] if mode == 'once' else []), timeout=30)
    assert_config_error(proc, 'transport_url')
    # The URL holds the broker password: it is not repeated.
    assert 's3cret' not in proc.stderr


def test_once_fails_when_discovery_fails(workdir):
    """An unparseable libvirt URI: exit 1 and say so, not "0 guests", 0."""
    conf = write_conf(workdir, qga_polling='discovery = libvirt',
                      other='[libvirt_discovery]\nuri = ::bogus::')
    proc = run([POLLING, '--config-file', conf, '--once'])
    assert proc.returncode == 1, proc.stderr
    assert 'guest discovery failed' in proc.stderr
    assert '[libvirt_discovery] uri' in proc.stderr
    assert 'One sweep done' not in proc.stderr


@pytest.mark.parametrize('lines', [
    '', 'collector_intervals = filesystem:60,vcpus:0,cpu:1.5,users:0',
    # a collector installed but not enabled may be given an interval
    'collectors = cpu\ncollector_intervals = filesystem:60'])
def test_good_configuration_still_runs(workdir, lines):
    proc = run([POLLING, '--config-file',
                write_conf(workdir, qga_polling=lines), '--once'])
    assert proc.returncode == 0, proc.stderr
    assert ('One sweep done: 1 guests (0 legacy, without agent channel), '
            '1 samples') in proc.stdout + proc.stderr


@pytest.mark.parametrize('args,words', [
    (['--timeout', '-1'], ['--timeout', 'from 0.01 to 3600']),
    (['--timeout', 'nan'], ['--timeout', 'finite']),
    (['--timeout', 'inf'], ['--timeout', 'finite']),
    (['--pings', '-5'], ['--pings', 'an integer from 0 to 10000']),
])
def test_probe_bad_arguments(workdir, args, words):
    proc = run([PROBE, '--socket', os.path.join(workdir, 'x.sock')] + args)
    assert_config_error(proc, *words)
