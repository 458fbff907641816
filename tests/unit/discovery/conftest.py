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

"""Fixtures of the discovery tests: a fresh config, a test-driver libvirt."""

from __future__ import annotations

from collections.abc import Callable

from oslo_config import cfg
import pytest

from ceilometer_qga import conf as qga_conf


@pytest.fixture
def make_conf() -> Callable[..., cfg.ConfigOpts]:
    """Return ``make(group={opt: value})`` -> a parsed, private ConfigOpts."""
    def make(**groups: dict) -> cfg.ConfigOpts:
        conf = cfg.ConfigOpts()
        qga_conf.register_opts(conf)
        conf([], project='qga-test', default_config_files=[],
             default_config_dirs=[])
        for group, values in groups.items():
            for name, value in values.items():
                conf.set_override(name, value, group=group)
        return conf
    return make
