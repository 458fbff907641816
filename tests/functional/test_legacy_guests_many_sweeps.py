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

"""A guest created the old way (no guest-agent channel at all), many sweeps.

Real parts: our ``libvirt`` discovery on libvirt's in-process
``test:///default`` driver (no VMs on this host) with domain XML written by
Nova's own code (``tests/fixtures/nova_domain.py``), the whole
``Pipeline`` (discovery, transport selection, sessions, the ``file://``
publisher) and, for the Ceilometer plugin, Ceilometer 27's
``AgentManager`` polling cycles (``test_ceilometer_plugin.py`` has the
set-up).  What is asserted: no crash, no traceback, and a bounded number
of log lines over many sweeps -- not one per sweep.
"""

import asyncio
import logging
import uuid

from oslo_config import cfg
import pytest

from ceilometer_qga import conf as conf_mod
from ceilometer_qga import pipeline as pipeline_mod
from tests.fixtures import nova_domain

pytestmark = pytest.mark.functional

SWEEPS = 30
#: lines a legacy guest may cost in all (its first sighting), not per sweep
MAX_LINES = 2


class RecordingHandler(logging.Handler):
    """Keeps every record of our loggers at WARNING and above."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def start_legacy_guest(hv) -> str:
    instance_id = str(uuid.uuid4())
    hv.start(nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=instance_id, domain_name='instance-%s' % instance_id[:8],
        display_name='legacy-1', channels=())))
    return instance_id


def test_legacy_guest_over_many_sweeps_of_the_pipeline(hypervisor, tmp_path):
    legacy = start_legacy_guest(hypervisor)
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], default_config_files=[])
    for name, value in (('discovery', 'libvirt'),
                        ('publishers', ['file://%s/s.jsonl' % tmp_path]),
                        ('backoff_initial', 0.0), ('backoff_max', 0.0)):
        conf.set_override(name, value, conf_mod.POLLING_GROUP)
    conf.set_override('uri', hypervisor.URI, 'libvirt_discovery')
    records = RecordingHandler()
    logger = logging.getLogger('ceilometer_qga')
    logger.addHandler(records)

    async def sweeps():
        runner = pipeline_mod.Pipeline(conf)
        try:
            return [await runner.run_once() for _ in range(SWEEPS)]
        finally:
            await runner.close()
    try:
        results = asyncio.run(sweeps())
    finally:
        logger.removeHandler(records)

    about_legacy = [r for r in records.records
                    if legacy in r.getMessage()]
    assert len(about_legacy) <= MAX_LINES, [r.getMessage()
                                            for r in about_legacy]
    assert not any(r.exc_info for r in records.records)
    for result in results:
        # discovered every sweep, and never a crash of the sweep
        assert result.discovery_error is None
        assert legacy in {r.guest.instance_id for r in result.reports}
