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

"""Make ``nova.virt.qga_libvirt`` importable wherever Nova is installed.

Nova's ``load_compute_driver`` imports ``'nova.virt.' + compute_driver``
and nothing else (``importutils.import_object``, no fallback to a full
path), so ``compute_driver = qga_libvirt.QgaLibvirtDriver`` needs a module
``nova.virt.qga_libvirt``.  Shipping it as a file inside Nova's package
(``site-packages/nova/virt/qga_libvirt/``) works only when our files land in
the very directory Nova's package lives in: with Nova installed editable
(setuptools' import hook), a ``site-packages/nova/`` directory without
``__init__.py`` becomes the whole ``nova`` namespace package and Nova no
longer imports; with Nova in another site directory the file is never
found.

Instead, ``qga-monitor-nova-driver.pth`` (installed next to our packages)
calls :func:`install` when Python starts: it appends a finder to
``sys.meta_path`` that answers for ``nova.virt.qga_libvirt`` only, after
Nova's ``nova.virt`` is imported from wherever it lives, and only when
nothing else (an older shim file in Nova's tree) provides it.  The module it
makes re-exports :class:`nova_qga.driver.QgaLibvirtDriver`.

This module is imported at every interpreter start of the environment it is
installed in: it imports nothing but the standard library until Nova asks
for the driver.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

#: The module ``compute_driver = qga_libvirt.QgaLibvirtDriver`` names.
ALIAS = 'nova.virt.qga_libvirt'
#: Where the driver really lives.
TARGET = 'nova_qga.driver'


class _AliasLoader:
    """Fills the alias module with the driver class of :data:`TARGET`."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """Default module creation."""
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        """Import the driver (and so Nova's libvirt driver) into the alias."""
        target = importlib.import_module(TARGET)
        module.QgaLibvirtDriver = target.QgaLibvirtDriver
        module.__all__ = ['QgaLibvirtDriver']
        module.__doc__ = 'qga-monitor compute driver (see %s).' % TARGET


class DriverAliasFinder:
    """A ``sys.meta_path`` finder for :data:`ALIAS` alone."""

    def find_spec(self, fullname: str, path=None, target=None
                  ) -> importlib.machinery.ModuleSpec | None:
        """The alias's spec; ``None`` (not ours) for every other module."""
        if fullname != ALIAS:
            return None
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(), origin='alias of %s' % TARGET)


def install() -> None:
    """Append the finder to ``sys.meta_path`` once (idempotent).

    Appended, not prepended: the standard finders (and a real
    ``nova/virt/qga_libvirt`` in Nova's tree, if an older release left
    one) come first.
    """
    if not any(isinstance(f, DriverAliasFinder) for f in sys.meta_path):
        sys.meta_path.append(DriverAliasFinder())
