"""Load Nova's test packages in native-threading mode.

``nova.tests.unit`` and ``nova.tests.functional`` call
``nova.monkey_patch.patch()`` on import, and by default that
eventlet-monkey-patches the whole pytest process, under every other
suite's asyncio tests.  nova-compute in Nova 34 itself runs in native
threading mode (``nova/cmd/compute.py``), so these tests do too, the way
Nova's own test runs choose it: ``OS_NOVA_DISABLE_EVENTLET_PATCHING=1``.

In that mode ``patch()`` also installs an import guard that raises when
eventlet is already imported and blocks every later eventlet import.  Other
libraries in this process import eventlet without patching anything
(oslo.messaging does), so the guard would fail here for nothing and, once
installed, break their later imports; it is skipped while Nova's test
packages are imported.  The rest of ``patch()`` runs as Nova wrote it.
"""

import os
from unittest import mock

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

from nova import monkey_patch  # noqa: E402

with mock.patch.object(monkey_patch, 'poison_eventlet', lambda: None):
    import nova.tests.functional  # noqa: E402,F401
    import nova.tests.unit  # noqa: E402,F401
