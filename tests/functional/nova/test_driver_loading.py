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

"""Nova loads QgaLibvirtDriver and its XML carries our channels.

Runs Nova's own code (``load_compute_driver``, ``LibvirtDriver.__init__``,
``_get_guest_config``) over Nova's fake libvirt
(``nova.tests.fixtures.LibvirtFixture``): there is no libvirtd for Nova to
drive in a test, which is why Nova's own driver tests use the same fixture.
"""

from __future__ import annotations

import importlib
import os
import tempfile

import fixtures
from lxml import etree
import nova.conf
from nova import context as nova_context
from nova.network import model as network_model
from nova import objects
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.virt import driver as virt_driver
from nova.virt import fake
from nova.virt.libvirt import blockinfo
from oslo_utils.fixture import uuidsentinel as uuids
import pytest

from nova_qga import driver
from nova_qga import driver_alias
from nova_qga import hook_chain
from tests.functional.nova import nova_harness

pytestmark = pytest.mark.functional

AGENT = 'org.qemu.guest_agent.0'
MONITOR = 'org.openstack.monitor.0'
DRIVER = 'qga_libvirt.QgaLibvirtDriver'


def _channels(xml, name):
    return etree.fromstring(xml).xpath(
        "devices/channel[target/@name='%s']" % name)


class QgaDriverLoadingTest(nova_harness.PytestCompat, test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())
        self.useFixture(nova_fixtures.CGroupsFixture())
        self.flags(instances_path=self.useFixture(fixtures.TempDir()).path)
        # Short and closed to other users, as the socket checks require.
        self.socket_dir = tempfile.mkdtemp(prefix='qga-', dir='/tmp')
        self.addCleanup(os.rmdir, self.socket_dir)
        os.chmod(self.socket_dir, 0o2770)
        self.flags(socket_dir=self.socket_dir, group='qga')
        self.context = nova_context.get_admin_context()

    def _instance(self, extra_specs=None, image_properties=None):
        flavor = objects.Flavor(
            id=2, flavorid='1', name='m1.small', memory_mb=2048, vcpus=2,
            root_gb=10, ephemeral_gb=0, swap=0, rxtx_factor=1.0,
            vcpu_weight=None, extra_specs=dict(extra_specs or {}))
        system_metadata = {'image_disk_format': 'raw'}
        for key, value in (image_properties or {}).items():
            system_metadata['image_' + key] = value
        return objects.Instance(
            id=7, uuid=uuids.instance, display_name='web-1',
            user_id=uuids.user, project_id=uuids.project,
            image_ref=uuids.image, flavor=flavor, new_flavor=None,
            old_flavor=None, system_metadata=system_metadata,
            memory_mb=2048, vcpus=2, root_gb=10, ephemeral_gb=0,
            host='compute1', node='compute1', os_type='linux',
            pci_devices=objects.PciDeviceList(), numa_topology=None,
            config_drive=None, vm_mode=None, kernel_id=None, ramdisk_id=None,
            vcpu_model=None, ephemeral_key_uuid=None, trusted_certs=None,
            resources=None, migration_context=None, info_cache=None,
            vm_state=None, task_state=None)

    def _guest_xml(self, drv, instance, image_properties=None):
        image_meta = objects.ImageMeta.from_dict(
            {'disk_format': 'raw', 'properties': image_properties or {}})
        disk_info = blockinfo.get_disk_info(
            nova.conf.CONF.libvirt.virt_type, instance, image_meta)
        return drv._get_guest_xml(self.context, instance,
                                  network_model.NetworkInfo(), disk_info,
                                  image_meta)

    def test_nova_virt_qga_libvirt_is_this_driver_without_files_in_nova(self):
        alias = importlib.import_module('nova.virt.qga_libvirt')
        self.assertIs(driver.QgaLibvirtDriver, alias.QgaLibvirtDriver)
        # Served by our finder (qga-monitor-nova-driver.pth), not by a file
        # inside Nova's package.
        self.assertIsInstance(alias.__spec__.loader,
                              driver_alias._AliasLoader)
        virt_dir = os.path.dirname(importlib.import_module('nova.virt')
                                   .__file__)
        self.assertFalse(os.path.exists(os.path.join(virt_dir,
                                                     'qga_libvirt')))

    def test_load_compute_driver_returns_qga_driver(self):
        drv = virt_driver.load_compute_driver(fake.FakeVirtAPI(), DRIVER)
        self.assertIsInstance(drv, driver.QgaLibvirtDriver)
        self.assertEqual(['agent_channel', 'monitor_channel'],
                         drv._domain_hooks.names)

    def test_compute_driver_option_loads_qga_driver(self):
        self.flags(compute_driver=DRIVER)
        drv = virt_driver.load_compute_driver(fake.FakeVirtAPI())
        self.assertIsInstance(drv, driver.QgaLibvirtDriver)

    def test_unknown_hook_stops_the_driver_loading(self):
        self.flags(domain_hooks=['agent_channel', 'no_such_hook'],
                   group='qga')
        err = self.assertRaises(hook_chain.HookLoadError,
                                virt_driver.load_compute_driver,
                                fake.FakeVirtAPI(), DRIVER)
        self.assertIn('[qga] domain_hooks', str(err))
        self.assertIn('no_such_hook', str(err))

    def test_guest_xml_of_real_instance_has_both_channels(self):
        drv = virt_driver.load_compute_driver(fake.FakeVirtAPI(), DRIVER)
        instance = self._instance()
        xml = self._guest_xml(drv, instance)

        self.assertEqual('kvm', etree.fromstring(xml).get('type'))
        (agent,) = _channels(xml, AGENT)
        self.assertEqual(
            '/var/lib/libvirt/qemu/org.qemu.guest_agent.0.%s.sock'
            % instance.name, agent.find('source').get('path'))
        (monitor,) = _channels(xml, MONITOR)
        self.assertEqual(
            os.path.join(self.socket_dir, instance.uuid + '.sock'),
            monitor.find('source').get('path'))
        self.assertEqual('bind', monitor.find('source').get('mode'))
        # Nova's own metadata survived the hook chain.
        self.assertEqual('web-1', etree.fromstring(xml).findtext(
            'metadata/{http://openstack.org/xmlns/libvirt/nova/1.1}'
            'instance/{http://openstack.org/xmlns/libvirt/nova/1.1}name'))

    def test_hw_qemu_guest_agent_image_gets_one_agent_channel(self):
        drv = virt_driver.load_compute_driver(fake.FakeVirtAPI(), DRIVER)
        props = {'hw_qemu_guest_agent': 'yes'}
        xml = self._guest_xml(drv, self._instance(image_properties=props),
                              image_properties=props)
        self.assertEqual(1, len(_channels(xml, AGENT)))
        self.assertEqual(1, len(_channels(xml, MONITOR)))

    def test_opted_out_instance_xml_is_nova_own(self):
        drv = virt_driver.load_compute_driver(fake.FakeVirtAPI(), DRIVER)
        instance = self._instance(extra_specs={'qga:monitor': 'false'})
        xml = self._guest_xml(drv, instance)
        self.assertEqual([], _channels(xml, AGENT))
        self.assertEqual([], _channels(xml, MONITOR))

    def test_lxc_guest_xml_unchanged(self):
        self.flags(virt_type='lxc', group='libvirt')
        drv = virt_driver.load_compute_driver(fake.FakeVirtAPI(), DRIVER)
        xml = self._guest_xml(drv, self._instance())
        self.assertEqual('lxc', etree.fromstring(xml).get('type'))
        self.assertEqual([], etree.fromstring(xml).findall('devices/channel'))
