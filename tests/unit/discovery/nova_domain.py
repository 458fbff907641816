"""Domain XML as Nova's libvirt driver writes it, built by Nova's own code.

``nova_domain_xml`` goes the way ``LibvirtDriver._get_guest_xml`` goes for
the parts discovery reads: a real ``nova.objects.Instance`` (with flavor,
owner names and image properties in system_metadata) through
``ComputeDriver.get_instance_driver_metadata`` and
``LibvirtDriver._get_guest_config_meta`` into a ``LibvirtConfigGuest``
with unix virtio channels, then ``to_xml()``.  Nothing here is a copy of
Nova's format: if Nova changes it, these tests see the change.
"""

from __future__ import annotations

import dataclasses

from nova import objects
from nova.virt.libvirt import config as vconfig

from tests.fixtures import nova_metadata

objects.register_all()

PROJECT_ID = '8d4c3e1b6b7a4a2c9d7c1f0e5b3a2d11'
USER_ID = '1f2e3d4c5b6a47989a8b7c6d5e4f3a21'
IMAGE_ID = '5a3b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'
MONITOR = 'org.openstack.monitor.0'
STANDARD = 'org.qemu.guest_agent.0'


@dataclasses.dataclass
class Server:
    """The few facts of a Nova server the tests vary."""

    uuid: str
    domain_name: str
    display_name: str = 'web-1'
    flavor_name: str = 'm1.small'
    flavor_id: str = '2'
    image_ref: str | None = IMAGE_ID
    extra_specs: dict = dataclasses.field(
        default_factory=lambda: {'hw:cpu_policy': 'shared',
                                 'qga:monitor': 'true'})
    # (target name, socket path) per unix virtio channel
    channels: tuple = ()


def nova_instance(server: Server) -> objects.Instance:
    """A nova.objects.Instance with what the metadata code reads."""
    flavor = objects.Flavor(name=server.flavor_name,
                            flavorid=server.flavor_id,
                            memory_mb=2048, vcpus=2, root_gb=20,
                            ephemeral_gb=5, swap=512,
                            extra_specs=dict(server.extra_specs))
    return objects.Instance(
        uuid=server.uuid,
        display_name=server.display_name,
        user_id=USER_ID,
        project_id=PROJECT_ID,
        image_ref=server.image_ref or '',
        flavor=flavor,
        system_metadata={
            'owner_user_name': 'alice',
            'owner_project_name': 'demo',
            'image_name': 'debian-12',
            'image_container_format': 'bare',
            'image_disk_format': 'qcow2',
            'image_min_disk': '20',
            'image_min_ram': '0',
            'image_hw_qemu_guest_agent': 'yes',
            'image_os_distro': 'debian',
        })


def nova_domain_config(server: Server,
                       virt_type: str = 'test') -> vconfig.LibvirtConfigGuest:
    """The LibvirtConfigGuest of a server, metadata made by Nova."""
    meta = nova_metadata.nova_metadata(nova_instance(server))

    guest = vconfig.LibvirtConfigGuest()
    guest.virt_type = virt_type
    guest.name = server.domain_name
    guest.uuid = server.uuid
    guest.memory = 256 * 1024
    guest.vcpus = 1
    guest.os_type = 'hvm'
    guest.os_arch = 'x86_64'
    guest.metadata.append(meta)
    for target_name, path in server.channels:
        chan = vconfig.LibvirtConfigGuestChannel()
        chan.type = 'unix'
        chan.source_path = path
        chan.target_name = target_name
        guest.add_device(chan)
    return guest


def nova_domain_xml(server: Server, virt_type: str = 'test') -> str:
    """The domain XML Nova would define for this server."""
    return nova_domain_config(server, virt_type).to_xml()
