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

"""Build step of qga-monitor's wheel (setup.cfg ``[global] commands``).

Not part of the installed package.  ``build_py`` also copies
``qga-monitor-nova-driver.pth`` to the top of the wheel, next to our
packages, where Python's ``site`` runs it at start-up: that makes
``compute_driver = qga_libvirt.QgaLibvirtDriver`` load without any file in
Nova's own package (see ``nova_qga/driver_alias.py``).  pbr replaces a
``cmdclass`` passed to ``setup()``, hence this module.
"""

import os

from setuptools.command import build_py

DRIVER_PTH = 'qga-monitor-nova-driver.pth'


class BuildPyWithDriverPth(build_py.build_py):
    """``build_py`` that also puts the driver alias ``.pth`` in the wheel."""

    command_name = 'build_py'

    def run(self):
        """Build the packages, then add the ``.pth``."""
        super().run()
        self.copy_file(DRIVER_PTH, os.path.join(self.build_lib, DRIVER_PTH))

    def get_outputs(self, include_bytecode=True):
        """The packages' files and the ``.pth`` (for the wheel's RECORD)."""
        return super().get_outputs(include_bytecode) + [
            os.path.join(self.build_lib, DRIVER_PTH)]
