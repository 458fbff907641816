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

"""Fixtures of the publisher tests: a parsed, private configuration."""

from __future__ import annotations

from collections.abc import Callable
import pathlib

from oslo_config import cfg
import pytest

from ceilometer_qga import conf as qga_conf


@pytest.fixture
def make_conf(tmp_path: pathlib.Path) -> Callable[..., cfg.ConfigOpts]:
    """Return ``make({section: {option: value}})`` -> a parsed ConfigOpts.

    The options are written to a configuration file and parsed, the way an
    operator's qga-polling.conf is, so that options registered late (the
    oslo.messaging ones, registered when a transport is made) see them too.
    """
    def make(sections: dict[str, dict[str, object]] | None = None
             ) -> cfg.ConfigOpts:
        path = tmp_path / 'qga-polling.conf'
        lines = []
        for section, values in (sections or {}).items():
            lines.append('[%s]' % section)
            lines.extend('%s = %s' % item for item in values.items())
        path.write_text('\n'.join(lines) + '\n')
        conf = cfg.ConfigOpts()
        qga_conf.register_opts(conf)
        conf([], project='qga-test', default_config_files=[str(path)],
             default_config_dirs=[])
        return conf
    return make
