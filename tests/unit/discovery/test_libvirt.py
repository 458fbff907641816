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

"""LibvirtDiscovery against libvirt's in-process test driver.

The domains carry metadata written by Nova's own code (``nova_domain``).
The test driver reports no ``state=`` on channels (the QEMU driver does), so
channel-state parsing is also checked on live XML copied from a real QEMU
domain.  Faults the test driver cannot produce on demand (a dropped
connection during a call, one failing call) are injected by thin wrappers
around the real connection; each such test says so.
"""

from __future__ import annotations

import hashlib
import sys
import threading

import libvirt
from lxml import etree
from oslo_config import cfg
import pytest

from ceilometer_qga import discovery
from ceilometer_qga.discovery import libvirt as lv_discovery
from ceilometer_qga.guest import Channel
from ceilometer_qga import libvirt_xml
from tests.fixtures import nova_domain
from tests.fixtures.nova_domain import MONITOR
from tests.fixtures.nova_domain import STANDARD

UUID_A = '3c9f1a2e-5b4d-4e6f-8a7b-0c1d2e3f4a5b'
UUID_B = '4d0a2b3f-6c5e-4f7a-9b8c-1d2e3f4a5b6c'
UUID_C = '5e1b3c4a-7d6f-4a8b-8c9d-2e3f4a5b6c7d'
HOST = 'compute-7'


def nova_xml(uuid, name, display_name, channels, drop_paths=False):
    xml = nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=uuid, domain_name=name, display_name=display_name,
        channels=channels))
    if not drop_paths:
        return xml
    # The inactive XML of a domain whose socket libvirt places itself
    # (Nova's layout for the standard channel) has no path.
    root = etree.fromstring(xml)
    for source in root.iterfind('./devices/channel/source'):
        del source.attrib['path']
    return etree.tostring(root, encoding='unicode')


@pytest.fixture
def conf(make_conf):
    conf = make_conf(libvirt_discovery={'uri': 'test:///default'},
                     qga_polling={'discovery': 'libvirt'})
    conf.set_override('host', HOST)
    return conf


@pytest.fixture
def domains(hypervisor, tmp_path):
    """A: both channels; B: monitor channel without path; C: shut off."""
    a = hypervisor.start(nova_xml(
        UUID_A, 'instance-0000000a', 'web-a',
        ((STANDARD, str(tmp_path / 'a-qga.sock')),
         (MONITOR, str(tmp_path / 'a-mon.sock')))))
    b = hypervisor.start(nova_xml(
        UUID_B, 'instance-0000000b', 'web-b',
        ((MONITOR, str(tmp_path / 'b-mon.sock')),), drop_paths=True))
    c = hypervisor.define(nova_xml(
        UUID_C, 'instance-0000000c', 'web-c',
        ((MONITOR, str(tmp_path / 'c-mon.sock')),)))
    return a, b, c


def by_id(guests):
    return {g.instance_id: g for g in guests}


def libvirt_error(code, domain, message):
    """A libvirtError as libvirt raises it, with this code and domain."""
    exc = libvirt.libvirtError(message)
    exc.err = (code, domain, message, libvirt.VIR_ERR_ERROR,
               None, None, None, -1, -1)
    return exc


def disconnect_error():
    return libvirt_error(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC,
                         'Cannot recv data: Connection reset by peer')


class WrappedConnection:
    """The real read-only connection, with hooks on listAllDomains.

    ``list_errors`` (a list shared by every connection the discovery
    opens) are raised by the next calls, one each;
    ``after_list(domains)`` runs between listing and returning, i.e. before
    the discovery inspects any domain.
    """

    def __init__(self, real, list_errors=None, after_list=None):
        self._real = real
        self.list_errors = list_errors if list_errors is not None else []
        self.after_list = after_list

    def __getattr__(self, name):
        return getattr(self._real, name)

    def listAllDomains(self, flags=0):
        if self.list_errors:
            raise self.list_errors.pop(0)
        doms = self._real.listAllDomains(flags)
        if self.after_list is not None:
            self.after_list(doms)
        return doms


class WrappedDiscovery(lv_discovery.LibvirtDiscovery):
    """LibvirtDiscovery whose every new connection is wrapped by ``wrap``."""

    def __init__(self, conf, wrap):
        super().__init__(conf, conf.libvirt_discovery)
        self.wrap = wrap
        self.opened = 0

    def _open_connection(self):
        self.opened += 1
        return self.wrap(super()._open_connection())


def test_finds_running_nova_domains_with_channels(conf, domains, tmp_path):
    disco = lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery)
    guests = by_id(disco.discover())
    disco.close()

    # the built-in 'test' domain (no Nova metadata) and the shut-off C
    # are not there
    assert sorted(guests) == [UUID_A, UUID_B]
    a, b = guests[UUID_A], guests[UUID_B]
    assert (a.name, a.display_name, a.project_id, a.user_id) == (
        'instance-0000000a', 'web-a', nova_domain.PROJECT_ID,
        nova_domain.USER_ID)
    assert a.channels == (
        Channel(STANDARD, str(tmp_path / 'a-qga.sock'), None),
        Channel(MONITOR, str(tmp_path / 'a-mon.sock'), None))
    assert b.channels == (Channel(MONITOR, None, None),)
    assert b.display_name == 'web-b'
    # the hypervisor the transport reaches their agents through
    assert a.libvirt_uri == b.libvirt_uri == 'test:///default'

    meta = a.metadata
    assert meta['name'] == 'instance-0000000a'
    assert meta['instance_id'] == UUID_A
    assert meta['display_name'] == 'web-a'
    assert meta['instance_type'] == 'm1.small'
    assert meta['flavor']['id'] == '2'
    assert meta['image_ref'] == nova_domain.IMAGE_ID
    assert meta['instance_host'] == HOST
    assert meta['host'] == hashlib.sha224(
        (nova_domain.PROJECT_ID + HOST).encode()).hexdigest()
    assert (meta['state'], meta['status']) == ('running', 'active')


def test_paused_domain_is_listed_with_its_state(conf, domains):
    a, b, c = domains
    b.suspend()
    guests = by_id(lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery).discover())
    assert guests[UUID_B].metadata['state'] == 'paused'
    assert guests[UUID_B].metadata['status'] == 'paused'
    assert guests[UUID_A].metadata['state'] == 'running'


def test_started_domain_appears_stopped_one_goes(conf, domains):
    a, b, c = domains
    disco = lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery)
    assert sorted(by_id(disco.discover())) == [UUID_A, UUID_B]
    c.create()
    a.destroy()
    assert sorted(by_id(disco.discover())) == [UUID_B, UUID_C]


def test_discover_one_is_discover_for_one_domain(conf, domains):
    """What a libvirt event names: one domain, as discover() lists it."""
    a, b, c = domains
    disco = lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery)
    b.suspend()
    listed = by_id(disco.discover())
    for uuid in (UUID_A, UUID_B):
        one = disco.discover_one(uuid)
        assert one == listed[uuid]
        assert one.metadata == listed[uuid].metadata
    assert disco.discover_one(UUID_C) is None        # shut off
    c.create()
    assert disco.discover_one(UUID_C).metadata['state'] == 'running'
    a.destroy()
    assert disco.discover_one(UUID_A) is None        # stopped
    a.undefine()
    assert disco.discover_one(UUID_A) is None        # gone


def test_discover_one_reconnects_once(conf, domains):
    """A connection lost during the look-up (injected) is reopened once;
    a second loss is a DiscoveryError naming the domain.
    """
    class Lookup(WrappedConnection):
        def lookupByUUIDString(self, uuid):
            if self.list_errors:
                raise self.list_errors.pop(0)
            return self._real.lookupByUUIDString(uuid)

    errors = [disconnect_error()]
    disco = WrappedDiscovery(conf, lambda real: Lookup(real, errors))
    assert disco.discover_one(UUID_A).instance_id == UUID_A
    assert disco.opened == 2
    errors.extend([disconnect_error(), disconnect_error()])
    with pytest.raises(discovery.DiscoveryError, match=UUID_B):
        disco.discover_one(UUID_B)


def ceilometer_conf():
    """Ceilometer's options, registered as prepare_service does.

    prepare_service itself is not called: it also sets up process-wide
    logging, messaging and signal handlers.
    """
    from ceilometer import keystone_client
    from ceilometer import opts

    conf = cfg.ConfigOpts()
    for group, options in opts.list_opts():
        conf.register_opts(list(options),
                           group=None if group == 'DEFAULT' else group)
    keystone_client.register_keystoneauth_opts(conf)
    conf([], project='ceilometer', default_config_files=[],
         default_config_dirs=[])
    keystone_client.post_register_keystoneauth_opts(conf)
    conf.set_override('libvirt_uri', 'test:///default')
    conf.set_override('host', HOST)
    return conf


def test_metadata_is_ceilometers_for_the_same_domain(conf, domains):
    """Ceilometer's own libvirt_metadata discovery, on the same domains.

    Its instances, through the function its compute pollsters build
    resource_metadata with, must give what we put in Guest.metadata, up to
    two documented differences.
    """
    from ceilometer.compute import discovery as ceilo_discovery
    from ceilometer.compute.pollsters import util as ceilo_util

    a, b, c = domains
    b.suspend()
    ceilo_conf = ceilometer_conf()
    theirs = {
        inst.id: ceilo_util._get_metadata_from_object(ceilo_conf, inst)
        for inst in ceilo_discovery.InstanceDiscovery(ceilo_conf).discover(
            None)
        # Ceilometer lists shut-off domains too; we do not.
        if inst.id != UUID_C}
    ours = {g.instance_id: dict(g.metadata)
            for g in lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery).discover()}

    assert sorted(theirs) == sorted(ours) == [UUID_A, UUID_B]
    for instance_id in ours:
        # created_at: ours only (Nova writes it; Gnocchi's instance
        # resource reads resource_metadata.created_at).
        assert 'created_at' in ours[instance_id]
        del ours[instance_id]['created_at']
        # task_state: Ceilometer cannot know it either and puts ''.
        assert theirs[instance_id].pop('task_state') == ''
        assert ours[instance_id] == theirs[instance_id]


def test_domains_vanishing_mid_discovery_are_skipped(conf, hypervisor,
                                                     domains, tmp_path):
    """Domains stopped between listing and inspection are skipped.

    A wrapper on the real connection destroys a transient and a persistent
    domain between listAllDomains and their inspection: the first then
    answers VIR_ERR_NO_DOMAIN, the second reports shut-off; both are
    skipped, the rest is returned.
    """
    a, b, c = domains
    hypervisor.start_transient(nova_xml(
        UUID_C.replace('5e1b', '6f2c'), 'instance-0000000t', 'transient',
        ((MONITOR, str(tmp_path / 't.sock')),)))

    def stop_some(listed):
        assert len(listed) == 4            # A, B, transient, built-in
        for dom in hypervisor.conn.listAllDomains(
                libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            if dom.name() in ('instance-0000000t', 'instance-0000000a'):
                dom.destroy()

    disco = WrappedDiscovery(
        conf, lambda real: WrappedConnection(real, after_list=stop_some))
    assert sorted(by_id(disco.discover())) == [UUID_B]


def test_domain_that_fails_inspection_is_skipped(conf, domains):
    """A domain whose inspection fails is skipped, the sweep goes on.

    Its XMLDesc fails with a non-connection error (a wrapper, since the
    test driver cannot be made to fail one call); no reconnect follows.
    """
    class FailingDomain:
        def __init__(self, real):
            self._real = real

        def __getattr__(self, name):
            return getattr(self._real, name)

        def XMLDesc(self, flags=0):
            raise libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR,
                                libvirt.VIR_FROM_QEMU, 'internal error')

    class Conn(WrappedConnection):
        def listAllDomains(self, flags=0):
            return [FailingDomain(d) if d.UUIDString() == UUID_A else d
                    for d in super().listAllDomains(flags)]

    disco = WrappedDiscovery(conf, Conn)
    assert sorted(by_id(disco.discover())) == [UUID_B]
    assert disco.opened == 1


def test_reopens_a_connection_closed_under_it(conf, domains):
    disco = lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery)
    disco.discover()
    first = disco._connection.current
    first.close()                          # isAlive() now raises
    assert sorted(by_id(disco.discover())) == [UUID_A, UUID_B]
    assert disco._connection.current is not first
    disco.close()
    assert disco._connection.current is None
    assert sorted(by_id(disco.discover())) == [UUID_A, UUID_B]


def test_reconnects_once_after_a_disconnect_error(conf, domains):
    """A connection lost during a call is reopened once.

    The drop during listAllDomains is injected (the test driver has no
    daemon to lose); after one reconnect the sweep succeeds.
    """
    errors = [disconnect_error()]

    def wrap(real):
        return WrappedConnection(real, list_errors=errors)

    disco = WrappedDiscovery(conf, wrap)
    assert sorted(by_id(disco.discover())) == [UUID_A, UUID_B]
    assert disco.opened == 2


def test_gives_up_after_the_second_disconnect(conf, domains):
    """Both the first try and the retry lose the connection (injected)."""
    errors = [disconnect_error(), disconnect_error()]
    disco = WrappedDiscovery(
        conf, lambda real: WrappedConnection(real, list_errors=errors))
    with pytest.raises(discovery.DiscoveryError,
                       match='after reconnecting: Cannot recv data'):
        disco.discover()
    assert disco.opened == 2
    # the next sweep starts afresh
    assert sorted(by_id(disco.discover())) == [UUID_A, UUID_B]


def test_other_list_errors_are_not_retried(conf, domains):
    """A listing error that is not a lost connection (injected)."""
    errors = [libvirt_error(libvirt.VIR_ERR_OPERATION_FAILED,
                            libvirt.VIR_FROM_DOMAIN, 'operation failed')]
    disco = WrappedDiscovery(
        conf, lambda real: WrappedConnection(real, list_errors=errors))
    with pytest.raises(discovery.DiscoveryError,
                       match='cannot list the domains of test:///default'):
        disco.discover()
    assert disco.opened == 1


def test_unreachable_libvirt_names_the_uri_option(make_conf):
    conf = make_conf(libvirt_discovery={
        'uri': 'qemu+unix:///system?socket=/nonexistent/libvirt-sock'})
    disco = lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery)
    with pytest.raises(discovery.DiscoveryError) as err:
        disco.discover()
    assert '[libvirt_discovery] uri' in str(err.value)
    assert '/nonexistent/libvirt-sock' in str(err.value)


def test_missing_libvirt_module_names_the_discovery_option(conf,
                                                           monkeypatch):
    # sys.modules[name] = None makes "import name" fail, as when
    # libvirt-python is not installed.
    monkeypatch.setitem(sys.modules, 'libvirt', None)
    with pytest.raises(ValueError) as err:
        lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery)
    assert str(err.value).startswith(
        '[qga_polling] discovery = libvirt needs the libvirt Python binding')


def test_discover_from_many_threads(conf, domains):
    disco = lv_discovery.LibvirtDiscovery(conf, conf.libvirt_discovery)
    results, errors = [], []

    def sweep():
        try:
            results.append(sorted(by_id(disco.discover())))
        except Exception as exc:           # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert results == [[UUID_A, UUID_B]] * 8


# Live XML of a domain run by libvirt's QEMU driver:
# libvirt adds state=, alias and address to every virtio channel.
LIVE_QEMU_XML = """
<domain type='qemu' id='1'>
  <name>feas-vm</name>
  <devices>
    <channel type='unix'>
      <source mode='bind' path='/w/lv/qga.sock'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
      <alias name='channel0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/w/lv/monitor.sock'/>
      <target type='virtio' name='org.openstack.monitor.0'
              state='disconnected'/>
      <alias name='channel1'/>
      <address type='virtio-serial' controller='0' bus='0' port='2'/>
    </channel>
    <channel type='unix'>
      <source mode='bind'
        path='/var/lib/libvirt/qemu/channel/target/domain-1-feas-vm/x.0'/>
      <target type='virtio' name='x.0' state='half-open'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/w/lv/no-name.sock'/>
      <target type='virtio'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/w/lv/guestfwd.sock'/>
      <target type='guestfwd' address='10.0.2.1' port='4600'/>
    </channel>
    <channel type='spicevmc'>
      <target type='virtio' name='com.redhat.spice.0' state='connected'/>
    </channel>
    <channel type='pty'>
      <target type='virtio' name='org.example.pty.0'/>
    </channel>
  </devices>
</domain>
"""


def test_channel_state_from_live_qemu_xml():
    channels = libvirt_xml.parse_channels(etree.fromstring(LIVE_QEMU_XML))
    assert channels == (
        Channel('org.qemu.guest_agent.0', '/w/lv/qga.sock', 'connected'),
        Channel('org.openstack.monitor.0', '/w/lv/monitor.sock',
                'disconnected'),
        # an unknown state value is not passed on
        Channel('x.0',
                '/var/lib/libvirt/qemu/channel/target/domain-1-feas-vm/x.0',
                None),
    )


def test_domain_without_devices_has_no_channels():
    assert libvirt_xml.parse_channels(
        etree.fromstring('<domain><name>x</name></domain>')) == ()


def test_host_id_is_novas():
    # Nova's API view: sha224(project_id + host); Ceilometer copies it.
    assert lv_discovery.host_id('p', 'h') == hashlib.sha224(
        b'ph').hexdigest()
    assert lv_discovery.host_id(None, 'h') == hashlib.sha224(
        b'h').hexdigest()
