"""WIP"""

from __future__ import annotations

import pytest

from tests.fixtures import nova_cloud as cloud_fixtures

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def cloud(libvirtd, rabbit_vhost, socket_dir, e2e_timings):
    with cloud_fixtures.nova_cloud(rabbit_vhost, libvirtd.uri, socket_dir) as c:
        e2e_timings.update(c.timings)
        yield c


def test_servers_list(cloud):
    assert cloud.compute.get('/servers')['servers'] == []
