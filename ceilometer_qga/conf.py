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

"""Configuration options of the qga poller (``qga-polling.conf``).

The poller's own options are declared here; each plugin declares its own
(``CONFIG_OPTS``, in group ``[<name>_<kind>]``: ``[libvirt_discovery]``,
``[static_discovery]``, ``[disk_collector]``...; see
:mod:`ceilometer_qga.plugins`), and the sweep observers theirs.
:func:`list_opts` lists them all for ``oslo-config-generator`` (namespace
``ceilometer_qga``) and for the start-up check, and :func:`register_opts`
registers them all, so that every installed plugin's options are checked
and documented whether or not it is chosen.  Names that Ceilometer also has
(``[publisher] telemetry_secret``) keep Ceilometer's spelling and default
so that one file can serve both.
"""

from __future__ import annotations

import socket

from oslo_config import cfg

from ceilometer_qga import plugins

POLLING_GROUP = 'qga_polling'
LIBVIRT_TRANSPORT_GROUP = 'libvirt_transport'
PUBLISHER_GROUP = 'publisher'

polling_opts = [
    cfg.StrOpt('discovery',
               default='libvirt',
               help='How guests are found on this host: "libvirt" (running '
                    'domains of the local hypervisor, with their Nova '
                    'metadata and guest-agent channels) or "static" (the '
                    'list in [static_discovery] guests). Any other name is '
                    'looked up in the ceilometer_qga.discovery entry-point '
                    'namespace.'),
    cfg.ListOpt('publishers',
                default=['notifier://'],
                help='Where samples go, as publisher URLs: "notifier://" '
                     '(the oslo.messaging bus, exchange "ceilometer", the '
                     'format Ceilometer\'s notification agent consumes; '
                     'query parameters topic, batch_size (50), retry (1) '
                     'and hold_off (30 s after a failure)) and '
                     '"file:///PATH" (one JSON sample per line; max_bytes '
                     'rotates to PATH.1, hold_off as above).'),
    cfg.ListOpt('collectors',
                default=['filesystem', 'memory', 'cpu', 'load', 'disk',
                         'network', 'users', 'vcpus'],
                help='Collectors to run on every guest, by entry-point name '
                     'in the ceilometer_qga.collectors namespace. '
                     'guest.agent.up and guest.agent.latency are always '
                     'reported.'),
    cfg.DictOpt('collector_intervals',
                default={},
                help='Least seconds between two runs of a collector on one '
                     'guest, by collector name (NAME:SECONDS, e.g. '
                     '"filesystem:60,vcpus:0"), in place of what the '
                     'collector declares: filesystem 300 and vcpus 300 '
                     '(they change seldom); cpu, memory, load, disk, network '
                     'and users 0. 0 means every sweep. A sweep runs a '
                     'collector that last gave readings at least SECONDS '
                     'minus half the interval ago, so that with interval = '
                     '60 a 300 s collector runs every fifth sweep; in the '
                     'other sweeps its meters are absent (never repeated). '
                     'Every collector runs again after the agent '
                     'reconnects, and after a sweep in which it gave no '
                     'readings. Not used by the Ceilometer pollsters, whose '
                     'schedule is polling.yaml: there every collector runs '
                     'in every polling cycle.'),
    cfg.IntOpt('interval',
               default=300, min=1,
               help='Seconds between the starts of two sweeps.'),
    cfg.FloatOpt('heartbeat_interval',
                 default=10.0, min=0.0,
                 help='Seconds between two heartbeats: guest-ping alone to '
                      'every guest a sweep would contact, over the same '
                      'connections, so that an agent that is killed or hangs '
                      'is noticed within heartbeat_interval + '
                      'command_timeout instead of at the next sweep. Used '
                      'by the state-change events ([guest_agent_events] '
                      'enabled), which are its only output: '
                      'guest.agent.up stays one sample per sweep. 0 turns '
                      'the heartbeat off.'),
    cfg.IntOpt('max_concurrent_guests',
               default=8, min=1,
               help='How many guests are polled at the same time. Commands '
                    'to one guest are always sent one after another.'),
    cfg.FloatOpt('command_timeout',
                 default=2.0, min=0.01, max=3600,
                 help='Seconds to wait for the reply to one guest-agent '
                      'command before the guest is considered unresponsive '
                      'for this sweep.'),
    cfg.FloatOpt('guest_budget',
                 default=10.0, min=0.05, max=86400,
                 help='Seconds one guest may take in one sweep, all '
                      'commands included. A guest over budget is reported '
                      'with guest.agent.up=0 and the sweep goes on.'),
    cfg.IntOpt('max_reply_bytes',
               default=1024 * 1024, min=1024,
               help='Largest reply accepted from a guest agent, in bytes. A '
                    'longer reply is discarded and the connection is reset.'),
    cfg.BoolOpt('allow_file_reads',
                default=True,
                help='Read the allow-listed /proc files (/proc/meminfo, '
                     '/proc/stat, /proc/loadavg, /proc/diskstats, '
                     '/proc/net/dev, /proc/mounts) through guest-file-open/'
                     'read/close when no native command gives the figure '
                     '(and, for filesystem usage, ask the patched agents\' '
                     'guest-get-statvfs of each mountpoint). Never on '
                     'Windows guests. This is the only guest-agent route to '
                     'memory figures.'),
    cfg.IntOpt('capabilities_refresh',
               default=600, min=1,
               help='Seconds after which the list of commands a guest '
                    'offers (guest-info) is read again. It is also read '
                    'again after every reconnect.'),
    cfg.FloatOpt('backoff_initial',
                 default=30.0, min=0, max=86400,
                 help='Seconds a guest that failed is left alone before it '
                      'is contacted again. Doubles on every further failure.'),
    cfg.FloatOpt('backoff_max',
                 default=600.0, min=0, max=86400,
                 help='Upper bound of the per-guest back-off, in seconds.'),
    cfg.StrOpt('transport',
               default='auto',
               choices=[('socket', 'Connect to the unix socket of the '
                                   'dedicated monitor channel directly.'),
                        ('libvirt', 'Send commands through libvirt '
                                    '(qemuAgentCommand) on the standard '
                                    'guest-agent channel.'),
                        ('auto', 'The dedicated channel when the domain has '
                                 'one, else the standard channel through '
                                 'libvirt.')],
               help='How the poller talks to each guest agent.'),
    cfg.StrOpt('monitor_channel_name',
               default='org.openstack.monitor.0',
               help='Target name of the dedicated monitor channel (must '
                    'match [qga] monitor_channel_name in nova.conf).'),
    cfg.IntOpt('max_items',
               default=64, min=1,
               help='Most filesystems, disks or interfaces reported per '
                    'guest and collector; the rest are dropped with a '
                    'warning (guards against hostile or runaway guests).'),
    cfg.IntOpt('buffer_size',
               default=10000, min=0,
               help='Samples a publisher keeps while its destination is '
                    'unreachable. The oldest are dropped, counted and '
                    'logged, when the buffer is full. The sweep being '
                    'handed to a working publisher is never cut, even '
                    'when it alone is larger (1,000 guests make about '
                    '25,000 samples a sweep).'),
    cfg.FloatOpt('shutdown_timeout',
                 default=5.0, min=0, max=3600,
                 help='Seconds a stopping service waits for the running '
                      'sweep and the publishers to finish.'),
]

libvirt_transport_opts = [
    cfg.IntOpt('max_threads',
               default=4, min=1,
               deprecated_opts=[cfg.DeprecatedOpt(
                   'max_threads', group='libvirt_discovery')],
               help='Threads for the libvirt transport\'s blocking calls, '
                    'each with its own libvirt connection (so that a call '
                    'stuck on a hung guest agent holds up no other guest). '
                    'The connection URI is the one each guest was '
                    'discovered on ([libvirt_discovery] uri).'),
]

default_opts = [
    cfg.StrOpt('host',
               default=socket.gethostname(),
               sample_default='<your_hostname>',
               help='Name of this compute host, as Nova and Ceilometer call '
                    'it; used for instance_host and the hostId in sample '
                    'metadata.'),
]

publisher_opts = [
    cfg.StrOpt('telemetry_secret',
               secret=True,
               default='change this for valid signing',
               help='Secret value for signing messages. Set value empty if '
                    'signing is not required to avoid computational '
                    'overhead. Same option, and same meaning, as '
                    'Ceilometer\'s.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every option of the poller on ``conf``."""
    if 'host' not in conf:
        # Nova and Ceilometer register the same option on their own conf.
        conf.register_opts(default_opts)
    for group, opts in list_opts():
        if group != 'DEFAULT':
            conf.register_opts(opts, group=group)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options for ``oslo-config-generator --namespace ceilometer_qga``."""
    return [
        ('DEFAULT', default_opts),
        (POLLING_GROUP, list(polling_opts)),
        (LIBVIRT_TRANSPORT_GROUP, libvirt_transport_opts),
        (PUBLISHER_GROUP, publisher_opts),
    ] + _plugin_opts() + _observer_opts()


def _plugin_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The ``CONFIG_OPTS`` of every installed plugin, in its own group."""
    from ceilometer_qga import collectors
    from ceilometer_qga import discovery
    from ceilometer_qga import publishers
    return [item
            for namespace, suffix in (
                (discovery.NAMESPACE, discovery.GROUP_SUFFIX),
                (collectors.NAMESPACE, collectors.GROUP_SUFFIX),
                (publishers.NAMESPACE, publishers.GROUP_SUFFIX))
            for item in plugins.installed_opts(namespace, suffix)]


def _observer_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The ``CONFIG_OPTS`` of every installed sweep observer."""
    from ceilometer_qga import observers
    return plugins.installed_opts(observers.NAMESPACE, None)


def option(group: str, name: str) -> cfg.Opt:
    """The declaration of one option of :func:`list_opts` (its range...)."""
    for opt_group, opts in list_opts():
        if opt_group == group:
            for opt in opts:
                if opt.name == name:
                    return opt
    raise KeyError('[%s] %s' % (group, name))
