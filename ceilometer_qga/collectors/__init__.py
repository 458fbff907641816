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

"""Collectors: one per group of meters, loaded by entry-point name.

Use :func:`load_collectors`; the contract is in :mod:`.base`.
"""

from __future__ import annotations

from oslo_config import cfg

from ceilometer_qga.collectors import base
from ceilometer_qga.collectors.base import Collector
from ceilometer_qga import plugins

NAMESPACE = 'ceilometer_qga.collectors'
GROUP_SUFFIX = base.GROUP_SUFFIX


def load_collectors(conf: cfg.ConfigOpts,
                    names: list[str] | None = None) -> list[Collector]:
    """Instantiate the collectors named in ``[qga_polling] collectors``.

    :raises ValueError: a name has no entry point, or its plugin cannot be
        loaded (the message names the option and the plugin)
    """
    wanted = list(conf.qga_polling.collectors if names is None else names)
    loaded = plugins.load(NAMESPACE, wanted, '[qga_polling] collectors',
                          'collector', args=(conf,), conf=conf,
                          group_suffix=GROUP_SUFFIX)
    for name, collector in loaded:
        collector.name = name
    return [collector for _name, collector in loaded]
