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

"""Configuration options of the Nova extension (``[qga]`` in nova.conf).

Every option of ``nova_qga`` is declared here and listed by
:func:`list_opts` for ``oslo-config-generator`` (namespace ``nova_qga``).
This module imports nothing from Nova, so the sample configuration can be
generated where Nova is not installed.
"""

from __future__ import annotations

from oslo_config import cfg
from oslo_config import types

GROUP = 'qga'

#: Target name of the channel that stock qemu-guest-agent packages open.
STANDARD_CHANNEL_NAME = 'org.qemu.guest_agent.0'

#: Nova features the standard agent channel can enable without the
#: hw_qemu_guest_agent image property (see [qga] nova_agent_features).
AGENT_FEATURES = ('quiesce', 'set_password')

qga_opts = [
    cfg.ListOpt('domain_hooks',
                default=['agent_channel', 'monitor_channel'],
                help='Domain-XML hooks run, in this order, over every '
                     'guest definition the libvirt driver generates (spawn, '
                     'hard reboot, rescue, resize and its revert). Names '
                     'are entry points in the nova_qga.domain_hooks '
                     'namespace; built in are "agent_channel" (the '
                     'standard org.qemu.guest_agent.0 channel, owned by '
                     'libvirt) and "monitor_channel" (a dedicated channel '
                     'the qga poller connects to itself). An empty list '
                     'leaves the domain XML exactly as Nova makes it.'),
    cfg.StrOpt('monitor_channel_name',
               default='org.openstack.monitor.0',
               help='Target name of the dedicated monitor channel. Inside '
                    'the guest the port appears as '
                    '/dev/virtio-ports/<this name>; a second qemu-ga must '
                    'be bound to it. Must match [qga_polling] '
                    'monitor_channel_name of the poller.'),
    cfg.StrOpt('socket_dir',
               default='/var/lib/libvirt/qemu/qga-monitor',
               help='Directory on the compute host that holds the host end '
                    'of every monitor channel, one socket per instance '
                    'named <instance uuid>.sock, created by libvirt/QEMU '
                    'when the instance starts. Whoever can open a socket '
                    'can talk to that guest\'s agent, so the directory must '
                    'exist before instances start and give other users no '
                    'access at all (e.g. owner root, group = the group '
                    'QEMU runs as, mode 0770). The monitor channel is left '
                    'out, with an error in the log, while the directory is '
                    'missing or open to other users.'),
    cfg.StrOpt('socket_group',
               help='Group that must own socket_dir: the group QEMU runs as '
                    '("group" in libvirt\'s qemu.conf, e.g. libvirt-qemu on '
                    'Debian, qemu on RHEL), which libvirt also gives each '
                    'socket and to which the poller\'s user must belong. '
                    'When set, the monitor channel is left out, with an '
                    'error in the log, while the directory belongs to '
                    'another group. Unset: the group is not checked.'),
    cfg.BoolOpt('allow_opt_out',
                default=True,
                help='Honour "qga:monitor=false" as a flavor extra spec or '
                     'image property: such instances get none of the '
                     'domain_hooks. When False the hooks run for every '
                     'instance.'),
    cfg.ListOpt('strip_injected_files',
                default=['/etc/vm_monitor/*', '/etc/cron.d/inject_cron_job'],
                help='Shell-style patterns (fnmatch; "*" also matches "/") '
                     'of guest paths removed from the files injected at '
                     'spawn and rebuild (server "personality", API '
                     'microversion 2.56 and older) before the driver sees '
                     'them, so that neither disk injection nor the config '
                     'drive writes them. The defaults are the files of the '
                     'retired in-guest monitoring scripts. Empty list: '
                     'nothing is removed.'),
    cfg.ListOpt('nova_agent_features',
                item_type=types.String(choices=AGENT_FEATURES),
                default=['quiesce'],
                help='Nova features that use the guest agent on the '
                     'standard org.qemu.guest_agent.0 channel of an '
                     'instance whose image lacks hw_qemu_guest_agent=yes, '
                     'when the instance\'s domain has that channel (added '
                     'by the agent_channel hook or already there). '
                     '"quiesce": snapshots freeze and thaw the guest\'s '
                     'filesystems through the agent; where the agent does '
                     'not answer, Nova logs "Skipping quiescing instance" '
                     'and takes the snapshot unquiesced, as without the '
                     'image property, unless the image sets '
                     'os_require_quiesce. "set_password": the '
                     'changePassword server action (os-admin-password) '
                     'sets a user\'s password inside the guest through the '
                     'agent, which lets whoever may call that API change '
                     'the root password of the instance; off by default. '
                     'The dedicated monitor channel is never used for '
                     'either. An empty list: only the image property '
                     'enables them, as in Nova itself.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[qga]`` options on ``conf`` (Nova's global CONF)."""
    conf.register_opts(qga_opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options for ``oslo-config-generator --namespace nova_qga``."""
    return [(GROUP, qga_opts)]
