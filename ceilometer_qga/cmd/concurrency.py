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

"""oslo.service's threading backend, chosen before anything else is imported.

oslo.service fixes its backend for the whole process on first use, and its
default is eventlet: the first import of ``oslo_service.service`` -- which
``import oslo_messaging`` does (``oslo_messaging/server.py``) -- selects
eventlet for good, and ``init_backend(THREADING)`` then raises
``BackendAlreadySelected``.  Our commands run asyncio and native threads and
never monkey-patch, so they must have the threading backend, and must have
chosen it before any plugin module (the ``notifier://`` publisher imports
oslo.messaging) is loaded.  The ``ceilometer_qga.cmd`` package imports this
module first, so every console script (``qga-polling``, ``qga-probe``)
selects the backend before its own imports run, whatever their order.

Nova's own switch (``nova.monkey_patch.patch()``, see
``tests/fixtures/nova_threading.py``) is not needed: no command here
imports Nova or Ceilometer code.  The Ceilometer pollster plugins never
come through this package: inside ``ceilometer-polling`` the backend is
Ceilometer's choice, not ours.
"""

from __future__ import annotations

from oslo_service import backend

THREADING = backend.BackendType.THREADING


def select_threading() -> bool:
    """Select oslo.service's threading backend if no backend is chosen yet.

    :returns: True when the process runs on the threading backend, False
        when something imported before this module already fixed another
        one (then only a fresh interpreter can run the service).
    """
    if backend.get_backend_type() is None:
        backend.init_backend(THREADING)
    return backend.get_backend_type() is THREADING


select_threading()
