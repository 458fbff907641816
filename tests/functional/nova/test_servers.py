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

"""Servers booted through Nova's API on QgaLibvirtDriver.

Nova's own functional harness (``ServersTestBase``): the real API, conductor,
scheduler, placement and compute services, with
``compute_driver = qga_libvirt.QgaLibvirtDriver`` loaded by Nova itself.
Only the hypervisor is Nova's fake libvirt, and the harness's own stubs stay
in place (image creation on disk, host facts), because no libvirtd/QEMU can
be driven from a test; the domain XML checked here is the XML Nova passed to
``defineXML`` of that fake libvirt connection.
"""

from __future__ import annotations

import base64
import copy
import os
import tempfile

import fixtures
from lxml import etree
from nova import context as nova_context
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from nova.tests.functional.libvirt import base
from nova import utils
from nova.virt.libvirt import driver as libvirt_driver
from oslo_utils.fixture import uuidsentinel as uuids
import pytest

from nova_qga import driver
from tests.functional.nova import nova_harness

pytestmark = pytest.mark.functional

AGENT = 'org.qemu.guest_agent.0'
MONITOR = 'org.openstack.monitor.0'
PLAIN_FLAVOR = 'qga-plain'
#: sorts before every other flavor id, so that a server created without
#: naming its flavor would get this one (what made the test flaky)
OPT_OUT_FLAVOR = '0-qga-opt-out'


def _personality(path, text):
    return {'path': path,
            'contents': base64.b64encode(text.encode()).decode()}


class QgaServersTest(nova_harness.ServicesCompat, base.ServersTestBase):

    microversion = 'latest'

    def setUp(self):
        super().setUp()
        self.socket_dir = tempfile.mkdtemp(prefix='qga-', dir='/tmp')
        self.addCleanup(os.rmdir, self.socket_dir)
        os.chmod(self.socket_dir, 0o2770)
        self.flags(socket_dir=self.socket_dir, group='qga')

        # Pass-through spies: each records its argument and calls the real
        # method, so the boot runs exactly as without them.
        self.defined = []
        real_define = fakelibvirt.Connection.defineXML

        def define(conn, xml):
            self.defined.append(etree.fromstring(xml))
            return real_define(conn, xml)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Connection.defineXML', define))

        self.files_to_driver = []
        self.files_to_parent = []
        self._spy_spawn(driver.QgaLibvirtDriver, 'nova_qga.driver.'
                        'QgaLibvirtDriver.spawn', self.files_to_driver)
        self._spy_spawn(libvirt_driver.LibvirtDriver, 'nova.virt.libvirt.'
                        'driver.LibvirtDriver.spawn', self.files_to_parent)

        self.start_compute('compute1')
        # Every server below names its flavor.  Without one, Nova's harness
        # boots get_flavors()[0] (the API lists flavors by id), which is a
        # flavor a test created whenever its id sorts first -- a random
        # uuid does one time in sixteen.
        self.plain_flavor = self._create_flavor(
            id=PLAIN_FLAVOR, name=PLAIN_FLAVOR, memory_mb=512, vcpu=1,
            disk=1, ephemeral=0)

    def _setup_compute_service(self):
        # ServersTestBase sets libvirt.LibvirtDriver here; the compute
        # service started by start_compute() loads whatever this says.
        self.flags(compute_driver='qga_libvirt.QgaLibvirtDriver')

    def _spy_spawn(self, cls, target, record):
        real_spawn = cls.spawn

        def spawn(drv, context, instance, image_meta, injected_files,
                  *args, **kwargs):
            record.append(list(injected_files or []))
            return real_spawn(drv, context, instance, image_meta,
                              injected_files, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(target, spawn))

    def _domain(self, server):
        """The last definition libvirt received for this server."""
        mine = [d for d in self.defined if d.findtext('uuid') == server['id']]
        self.assertNotEqual([], mine, 'no domain defined for the server')
        return mine[-1]

    def _channels(self, domain, name):
        return domain.xpath("devices/channel[target/@name='%s']" % name)

    def _boot(self, flavor_id, **kwargs):
        """A server of ``flavor_id``, checked to have booted with it."""
        server = self._create_server(flavor_id=flavor_id, networks='none',
                                     **kwargs)
        self.assertEqual(flavor_id, server['flavor']['original_name'])
        return server

    def _add_image(self, image_id, **properties):
        image = copy.deepcopy(self.glance.image1)
        image['id'] = image_id
        image['properties'].update(properties)
        self.glance.create(nova_context.get_admin_context(), image)
        return image_id

    def test_boot_through_api_gets_both_channels(self):
        compute = self.computes['compute1']
        self.assertIsInstance(compute.driver, driver.QgaLibvirtDriver)

        server = self._boot(self.plain_flavor)

        domain = self._domain(server)
        self.assertEqual('kvm', domain.get('type'))
        (agent,) = self._channels(domain, AGENT)
        self.assertEqual(
            {'mode': 'bind',
             'path': '/var/lib/libvirt/qemu/org.qemu.guest_agent.0.%s.sock'
                     % domain.findtext('name')},
            dict(agent.find('source').attrib))
        self.assertEqual('virtio', agent.find('target').get('type'))
        (monitor,) = self._channels(domain, MONITOR)
        self.assertEqual(
            {'mode': 'bind',
             'path': os.path.join(self.socket_dir, server['id'] + '.sock')},
            dict(monitor.find('source').attrib))
        self.assertEqual('virtio', monitor.find('target').get('type'))

        # A hard reboot makes the XML again: still one channel of each.
        before = len(self.defined)
        self._reboot_server(server, hard=True)
        self.assertGreater(len(self.defined), before)
        domain = self._domain(server)
        self.assertEqual(1, len(self._channels(domain, AGENT)))
        self.assertEqual(1, len(self._channels(domain, MONITOR)))

    def test_legacy_injected_files_never_reach_the_driver(self):
        body = self._build_server(flavor_id=self.plain_flavor,
                                  networks='none')
        body['personality'] = [
            _personality('/etc/vm_monitor/monitor.py', 'import os'),
            _personality('/etc/motd', 'welcome'),
            _personality('/etc/cron.d/inject_cron_job', '* * * * * root x'),
        ]
        # personality was removed from the API in microversion 2.57.
        with utils.temporary_mutation(self.api, microversion='2.56'):
            server = self.api.post_server({'server': body})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(PLAIN_FLAVOR, server['flavor']['original_name'])

        self.assertEqual(
            [['/etc/vm_monitor/monitor.py', '/etc/motd',
              '/etc/cron.d/inject_cron_job']],
            [[path for path, _c in files] for files in self.files_to_driver])
        self.assertEqual([[('/etc/motd', b'welcome')]], self.files_to_parent)
        # What the parent spawn handed to disk injection and to the config
        # drive (both read this InjectionInfo), seen through the harness's
        # own stub of _create_image.
        (create_image,) = libvirt_driver.LibvirtDriver._create_image.\
            call_args_list
        self.assertEqual([('/etc/motd', b'welcome')],
                         create_image.kwargs['injection_info'].files)
        self.assertIn(
            'Dropped injected files /etc/vm_monitor/monitor.py, '
            '/etc/cron.d/inject_cron_job: they match [qga] '
            'strip_injected_files', self.stdlog.logger.output)

    def test_opt_out_and_nova_agent_channel_through_api(self):
        flavor_id = self._create_flavor(
            id=OPT_OUT_FLAVOR, name=OPT_OUT_FLAVOR, memory_mb=512, vcpu=1,
            disk=1, ephemeral=0, extra_spec={'qga:monitor': 'false'})
        # The ordering that broke the test is forced: a server that named
        # no flavor would now always get the opt-out one.
        self.assertEqual(OPT_OUT_FLAVOR, self.api.get_flavors()[0]['id'])
        opted_out = self._boot(flavor_id)

        image_out = self._add_image(uuids.image_opt_out,
                                    **{'qga:monitor': 'false'})
        image_opted_out = self._boot(self.plain_flavor, image_uuid=image_out)

        image_agent = self._add_image(uuids.image_agent,
                                      hw_qemu_guest_agent='yes')
        with_agent = self._boot(self.plain_flavor, image_uuid=image_agent)

        for server in (opted_out, image_opted_out):
            domain = self._domain(server)
            self.assertEqual([], self._channels(domain, AGENT))
            self.assertEqual([], self._channels(domain, MONITOR))
        domain = self._domain(with_agent)
        self.assertEqual(1, len(self._channels(domain, AGENT)))
        self.assertEqual(1, len(self._channels(domain, MONITOR)))


class QgaQuiesceTest(nova_harness.ServicesCompat, base.ServersTestBase):
    """Snapshots and password changes of servers booted on QgaLibvirtDriver.

    The API's ``createImage`` runs Nova's whole live-snapshot path
    (``LibvirtDriver.snapshot`` -> ``_live_snapshot``) on the fake libvirt
    of Nova's harness.  Stubbed, because the fake libvirt has no disk files:
    the qemu-img calls on the root disk (``get_disk_size``,
    ``get_disk_backing_file``, ``create_image``, ``extract_snapshot``, the
    privsep ``chown``).  ``fsFreeze``/``fsThaw``/``setUserPassword`` of the
    fake domain are pass-through spies: they record what libvirt was asked
    to send to the agent.

    Three behaviours of real libvirt that the fake lacks are added, because
    the live snapshot depends on them (each as libvirt documents it in
    src/libvirt-domain.c):

    * ``virDomainUndefineFlags``: "If the domain is running, it's converted
      to transient domain, without stopping it" (the fake forgets it);
    * ``virDomainDefineXML``: defining a running domain keeps it running
      and makes it persistent (the fake replaces it with a stopped one);
    * ``virDomainGetXMLDesc``: the live XML has the ``<channel>`` devices of
      the definition (the fake renders no channels), and the agent
      channel's ``<target state=...>`` once QEMU reported whether the guest
      opened the port (``virDomainChrDefFormat`` in
      src/conf/domain_conf.c; ``self.agent_state``, unset by default).
    """

    microversion = 'latest'

    def setUp(self):
        super().setUp()
        self.socket_dir = tempfile.mkdtemp(prefix='qga-', dir='/tmp')
        self.addCleanup(os.rmdir, self.socket_dir)
        os.chmod(self.socket_dir, 0o2770)
        self.flags(socket_dir=self.socket_dir, group='qga')

        self.agent_calls = []
        self.freeze_error = None
        self.agent_state = None
        self.state_after_freeze = None
        self._libvirt_semantics()
        for method in ('fsFreeze', 'fsThaw', 'setUserPassword'):
            self._spy_domain(method)

        def extract_snapshot(disk_path, source_fmt, out_path, dest_fmt):
            with open(out_path, 'wb') as out:
                out.write(b'snapshot of ' + disk_path.encode())

        for name, stub in (
                ('get_disk_size', lambda path, format=None: 1 << 30),
                ('get_disk_backing_file',
                 lambda path, basename=True, format=None: None),
                ('create_image', lambda *a, **kw: None),
                ('extract_snapshot', extract_snapshot)):
            self.useFixture(fixtures.MonkeyPatch(
                'nova.virt.libvirt.utils.' + name, stub))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.privsep.path.chown', lambda *a, **kw: None))

        self.start_compute('compute1')
        self.plain_flavor = self._create_flavor(
            id=PLAIN_FLAVOR, name=PLAIN_FLAVOR, memory_mb=512, vcpu=1,
            disk=1, ephemeral=0)

    def _setup_compute_service(self):
        self.flags(compute_driver='qga_libvirt.QgaLibvirtDriver')

    def _libvirt_semantics(self):
        channels = {}
        real_define = fakelibvirt.Connection.defineXML
        real_undefine = fakelibvirt.Domain.undefine
        real_xml = fakelibvirt.Domain.XMLDesc

        def define(conn, xml):
            domain = etree.fromstring(xml)
            name = domain.findtext('name')
            channels[name] = domain.findall('devices/channel')
            running = conn._vms.get(name)
            if running is not None and running.isActive():
                running._transient = False
                return running
            return real_define(conn, xml)

        def undefine(dom):
            if dom.isActive():
                dom._transient = True
                return
            real_undefine(dom)

        def xml_desc(dom, flags):
            domain = etree.fromstring(real_xml(dom, flags))
            devices = domain.find('devices')
            for channel in channels.get(dom.name(), []):
                channel = copy.deepcopy(channel)
                target = channel.find('target')
                if (self.agent_state is not None and
                        target.get('name') == AGENT):
                    target.set('state', self.agent_state)
                devices.append(channel)
            return etree.tostring(domain, encoding='unicode')

        for target, patch in (('Connection.defineXML', define),
                              ('Domain.undefine', undefine),
                              ('Domain.XMLDesc', xml_desc)):
            self.useFixture(fixtures.MonkeyPatch(
                'nova.tests.fixtures.libvirt.' + target, patch))

    def _spy_domain(self, method):
        real = getattr(fakelibvirt.Domain, method)

        def spy(dom, *args, **kwargs):
            self.agent_calls.append((method, dom.name()) + args)
            if method == 'fsFreeze' and self.freeze_error is not None:
                raise self.freeze_error
            if method == 'fsFreeze' and self.state_after_freeze is not None:
                self.agent_state = self.state_after_freeze
            return real(dom, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.' + method, spy))

    def _boot(self, flavor_id=None, **kwargs):
        server = self._create_server(
            flavor_id=flavor_id or self.plain_flavor, networks='none',
            **kwargs)
        return server

    def _add_image(self, image_id, **properties):
        image = copy.deepcopy(self.glance.image1)
        image['id'] = image_id
        image['properties'].update(properties)
        self.glance.create(nova_context.get_admin_context(), image)
        return image_id

    def _snapshot(self, server):
        """createImage through the API; the snapshot image once uploaded."""
        before = set(self.glance.images)
        self._snapshot_server(server, 'snap-' + server['id'])
        self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None, 'status': 'ACTIVE'})
        (image_id,) = set(self.glance.images) - before
        return self.glance.images[image_id]

    def _instance_name(self, server):
        return self.admin_api.get_server(server['id'])['OS-EXT-SRV-ATTR:'
                                                       'instance_name']

    def test_snapshot_quiesces_through_the_agent_channel(self):
        server = self._boot()
        image = self._snapshot(server)

        name = self._instance_name(server)
        self.assertEqual([('fsFreeze', name), ('fsThaw', name)],
                         self.agent_calls)
        self.assertEqual('active', image['status'])
        log = self.stdlog.logger.output
        self.assertNotIn('Skipping quiescing', log)
        self.assertNotIn('Quiescing instance not available', log)

    def test_no_agent_features_is_novas_own_behaviour(self):
        self.flags(nova_agent_features=[], group='qga')
        server = self._boot()
        image = self._snapshot(server)

        self.assertEqual([], self.agent_calls)
        self.assertEqual('active', image['status'])
        self.assertIn('Skipping quiescing instance: QEMU guest agent is not '
                      'enabled.', self.stdlog.logger.output)

    def test_agent_that_does_not_answer_gives_an_unquiesced_snapshot(self):
        # What libvirt raises when guest-sync gets no answer in time
        # (qemuAgentGuestSync, src/qemu/qemu_agent.c).
        self.freeze_error = fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'QEMU guest agent is not connected',
            error_code=fakelibvirt.VIR_ERR_AGENT_UNRESPONSIVE,
            error_domain=fakelibvirt.VIR_FROM_QEMU)
        server = self._boot()
        image = self._snapshot(server)

        name = self._instance_name(server)
        self.assertEqual([('fsFreeze', name)], self.agent_calls)
        self.assertEqual('active', image['status'])
        self.assertIn('Skipping quiescing instance: Failed to quiesce instance: '
                      'Error from libvirt while quiescing',
                      self.stdlog.logger.output)

    def test_domain_without_the_channel_is_not_quiesced(self):
        flavor_id = self._create_flavor(
            id=OPT_OUT_FLAVOR, name=OPT_OUT_FLAVOR, memory_mb=512, vcpu=1,
            disk=1, ephemeral=0, extra_spec={'qga:monitor': 'false'})
        server = self._boot(flavor_id)
        image = self._snapshot(server)

        self.assertEqual([], self.agent_calls)
        self.assertEqual('active', image['status'])
        self.assertIn('Skipping quiescing instance: QEMU guest agent is not '
                      'enabled: the domain has no org.qemu.guest_agent.0 '
                      'channel', self.stdlog.logger.output)

    def test_disconnected_agent_channel_is_not_asked(self):
        self.agent_state = 'disconnected'
        server = self._boot()
        image = self._snapshot(server)

        self.assertEqual([], self.agent_calls)
        self.assertEqual('active', image['status'])
        self.assertIn('Skipping quiescing instance: QEMU guest agent is not '
                      'enabled: no agent in the guest has '
                      'org.qemu.guest_agent.0 open', self.stdlog.logger.output)

    def test_connected_agent_channel_is_quiesced(self):
        self.agent_state = 'connected'
        server = self._boot()
        self._snapshot(server)

        name = self._instance_name(server)
        self.assertEqual([('fsFreeze', name), ('fsThaw', name)],
                         self.agent_calls)

    def test_a_frozen_guest_is_always_thawed(self):
        # The port is reported closed while the guest is frozen: the thaw
        # is still sent (libvirt then says whether the agent answered).
        self.agent_state = 'connected'
        self.state_after_freeze = 'disconnected'
        server = self._boot()
        self._snapshot(server)

        name = self._instance_name(server)
        self.assertEqual([('fsFreeze', name), ('fsThaw', name)],
                         self.agent_calls)

    def test_monitor_channel_alone_is_never_used_to_freeze(self):
        # Only the dedicated channel: its agent is read-only by design and
        # libvirt does not even connect to it, so no quiesce.
        self.flags(domain_hooks=['monitor_channel'], group='qga')
        self.restart_compute_service('compute1')
        server = self._boot()
        self.assertEqual([MONITOR], [
            target.get('name') for target in etree.fromstring(
                self._fake_domain(server).XMLDesc(0)).iterfind(
                    'devices/channel/target')])
        image = self._snapshot(server)

        self.assertEqual([], self.agent_calls)
        self.assertEqual('active', image['status'])
        self.assertIn('Skipping quiescing instance: QEMU guest agent is not '
                      'enabled: the domain has no org.qemu.guest_agent.0 '
                      'channel', self.stdlog.logger.output)

    def _fake_domain(self, server):
        conn = self.computes['compute1'].driver._host.get_connection()
        return conn.lookupByUUIDString(server['id'])

    def test_os_require_quiesce_without_a_channel_fails_the_snapshot(self):
        flavor_id = self._create_flavor(
            id=OPT_OUT_FLAVOR, name=OPT_OUT_FLAVOR, memory_mb=512, vcpu=1,
            disk=1, ephemeral=0, extra_spec={'qga:monitor': 'false'})
        image_id = self._add_image(uuids.require_quiesce,
                                   os_require_quiesce='yes')
        server = self._boot(flavor_id, image_uuid=image_id)
        before = set(self.glance.images)
        self._snapshot_server(server, 'snap')
        self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None})

        self.assertEqual([], self.agent_calls)
        self.assertIn('Quiescing instance failed but image property '
                      '"os_require_quiesce" is set', self.stdlog.logger.output)
        # Nova deletes the image of a failed snapshot.
        self.assertEqual(set(), set(self.glance.images) - before)

    def test_set_password_is_off_by_default(self):
        server = self._boot()
        exc = self.assertRaises(
            client.OpenStackApiException, self.api.post_server_action,
            server['id'], {'changePassword': {'adminPass': 'n3w'}})
        self.assertEqual(409, exc.response.status_code)
        self.assertEqual([], self.agent_calls)

    def test_set_password_through_the_agent_channel_when_enabled(self):
        self.flags(nova_agent_features=['quiesce', 'set_password'],
                   group='qga')
        server = self._boot()
        self.api.post_server_action(
            server['id'], {'changePassword': {'adminPass': 'n3w'}})
        self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None})

        self.assertEqual(
            [('setUserPassword', self._instance_name(server), 'root', 'n3w',
              0)],
            self.agent_calls)
