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

"""nova_qga.driver_alias: the finder that serves nova.virt.qga_libvirt."""

from __future__ import annotations

import os
import sys

from nova_qga import driver_alias


def test_finder_answers_for_the_alias_only():
    finder = driver_alias.DriverAliasFinder()
    spec = finder.find_spec('nova.virt.qga_libvirt')
    assert spec.name == 'nova.virt.qga_libvirt'
    assert isinstance(spec.loader, driver_alias._AliasLoader)
    for name in ('nova', 'nova.virt', 'nova.virt.libvirt',
                 'nova.virt.qga_libvirt.driver', 'qga_libvirt'):
        assert finder.find_spec(name) is None, name


def test_install_is_idempotent_and_appends(monkeypatch):
    monkeypatch.setattr(sys, 'meta_path', [object()])
    driver_alias.install()
    driver_alias.install()
    assert len(sys.meta_path) == 2
    assert isinstance(sys.meta_path[-1], driver_alias.DriverAliasFinder)


def test_the_pth_line_installs_the_finder(monkeypatch):
    """The line of qga-monitor-nova-driver.pth, as site.addpackage runs it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    with open(os.path.join(root, 'qga-monitor-nova-driver.pth')) as pth:
        (line,) = pth.read().splitlines()
    assert line.startswith('import ')
    monkeypatch.setattr(sys, 'meta_path', [])
    exec(line)  # noqa: S102  (what site.py does with an "import" line)
    assert [type(f) for f in sys.meta_path] == [
        driver_alias.DriverAliasFinder]
