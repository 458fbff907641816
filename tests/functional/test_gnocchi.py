"""Our samples in a real Gnocchi, through Ceilometer's notification agent.

Real here (``tests/fixtures/gnocchi.py``): PostgreSQL, Gnocchi 4.7
(``gnocchi-api`` under uwsgi, ``gnocchi-metricd``), Ceilometer 27's
``ceilometer-agent-notification`` with the meter and event pipelines
publishing ``gnocchi://``, RabbitMQ, our ``etc/ceilometer/gnocchi_resources.yaml``
and resource types (``tools/gnocchi_resource_types.py --apply``); on the
sending side ``qga-polling`` as a process (static discovery of qemu-ga 7.2
stand-ins, or libvirt discovery of Nova domains whose dedicated channel is a
stand-in's socket), and Nova's instance notifications sent with
oslo.messaging exactly as Nova's ``rpc.get_notifier('compute')`` sends them.
Every assertion queries Gnocchi's REST API.

libvirt discovery reads ``test:///PATH``: libvirt's test driver loading a
node file of Nova domains (XML made by Nova's own code,
``tests/unit/discovery/nova_domain.py``), so that a separate process sees
them; the e2e suite covers real QEMU domains.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fixtures.gnocchi import telemetry  # noqa: F401

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUR_TYPES = ('instance_guest_filesystem', 'instance_guest_disk', 'instance_guest_interface')


def run_tool(telemetry) -> subprocess.CompletedProcess:  # noqa: F811
    return subprocess.run(telemetry.resource_types_tool, env=telemetry.tool_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_resource_type_tool_is_idempotent(telemetry):  # noqa: F811
    """The fixture ran it once already; twice more: exit 0, same types."""
    before = {name: telemetry.api.get('/v1/resource_type/%s' % name) for name in OUR_TYPES}
    for _ in range(2):
        result = run_tool(telemetry)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ['%s: unchanged' % t for t in OUR_TYPES]
    after = {name: telemetry.api.get('/v1/resource_type/%s' % name) for name in OUR_TYPES}
    assert after == before
    print('gnocchi set-up timings: %s; RSS %.0f MiB' % (
        {k: round(v, 1) for k, v in telemetry.timings.items()}, telemetry.rss_mib()))
    assert sys.executable
