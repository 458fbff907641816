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

"""Fixtures shared by every test directory.

The fixtures that start real processes live in ``tests/fixtures/`` (one
module per kind of process) and are made visible to all tests here.
"""

# First: the threading mode of Nova and oslo.service is fixed by whichever
# module imports them first in the process (see the module).
from tests.fixtures import nova_threading  # noqa: F401  # isort:skip

from tests.fixtures.fake_agent import fake_agent  # noqa: F401
from tests.fixtures.libvirt_test_driver import hypervisor  # noqa: F401
from tests.fixtures.processes import processes  # noqa: F401
from tests.fixtures.qga import qemu_ga_52  # noqa: F401
from tests.fixtures.qga import qga_fleet  # noqa: F401
from tests.fixtures.qga import qga_guest  # noqa: F401
from tests.fixtures.qga import qga_guest_factory  # noqa: F401
from tests.fixtures.qga import short_tmpdir  # noqa: F401
from tests.fixtures.rabbit import rabbit_url  # noqa: F401
from tests.fixtures.rabbit import rabbit_vhost  # noqa: F401
