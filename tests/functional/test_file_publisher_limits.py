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

"""FilePublisher under ``RLIMIT_FSIZE``: a write that stops half-way.

Runs ``ceilometer_qga.publishers.file`` in a child process (the limit and
the ignored SIGXFSZ must not touch the test runner's own files), hence a
functional test; the publisher's other real failures are unit tests
(tests/unit/publishers/test_file.py).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.functional


def _read(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_no_half_line_after_a_write_fails_half_way(tmp_path):
    """A write cut short by RLIMIT_FSIZE leaves whole lines only.

    Runs in a child process: the limit and the ignored SIGXFSZ must not
    touch the test runner's own files.
    """
    path = tmp_path / 'samples.jsonl'
    script = textwrap.dedent('''
        import json, resource, signal, sys, urllib.parse
        from ceilometer_qga import conf as qga_conf
        from ceilometer_qga.publishers import file as file_pub
        from oslo_config import cfg
        path = sys.argv[1]
        conf = cfg.ConfigOpts()
        qga_conf.register_opts(conf)
        conf([], default_config_files=[], default_config_dirs=[])
        pub = file_pub.FilePublisher(conf, urllib.parse.urlsplit('file://' + path))
        messages = [{'counter_name': 'x', 'n': n, 'pad': 'y' * 60}
                    for n in range(30)]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
        pub.publish(messages)
        size_after_failure = open(path).read()
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        flushed = pub.flush(5.0)
        print(json.dumps({'after_failure': size_after_failure,
                          'buffered_then': 30 - pub.published,
                          'flushed': flushed}))
    ''')
    result = subprocess.run([sys.executable, '-c', script, str(path)],
                            capture_output=True, text=True, timeout=60,
                            cwd=str(pathlib.Path(__file__).parents[2]))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report['after_failure'] == ''
    assert report['flushed']
    assert [m['n'] for m in _read(path)] == list(range(30))
