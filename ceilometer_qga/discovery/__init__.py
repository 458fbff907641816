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

"""Discovery plugins: which guests run on this host.

Callers use :func:`load_discovery` and the
:class:`~ceilometer_qga.discovery.base.Discovery` contract; they never
import a plugin module.  Plugins are entry points in
``ceilometer_qga.discovery`` (``libvirt``, ``static``), chosen by
``[qga_polling] discovery``.
"""

from __future__ import annotations

import socket

from oslo_config import cfg

from ceilometer_qga.discovery.base import Discovery
from ceilometer_qga import plugins

NAMESPACE = 'ceilometer_qga.discovery'
#: a discovery plugin's option group is ``<name>_discovery``
GROUP_SUFFIX = 'discovery'
OPTION = '[qga_polling] discovery'
KIND = 'discovery plugin'


class DiscoveryError(Exception):
    """The source of truth could not be read (e.g. libvirt unreachable).

    :meth:`Discovery.discover` raises it instead of returning an empty
    list, so that "no guests" and "cannot tell" stay different things.
    """


def load_discovery(conf: cfg.ConfigOpts) -> Discovery:
    """Build the discovery plugin named by ``[qga_polling] discovery``.

    :raises ValueError: no plugin has that name, or the plugin refused its
        configuration (the message names the option).
    """
    [(_name, plugin)] = plugins.load(
        NAMESPACE, [conf.qga_polling.discovery], OPTION, KIND, args=(conf,),
        conf=conf, group_suffix=GROUP_SUFFIX)
    return plugin


def libvirt_uri(conf: cfg.ConfigOpts) -> str | None:
    """The libvirt URI the configured discovery lists domains on, or None.

    Asked of the plugin class (:meth:`Discovery.libvirt_uri`) with its own
    group, without building it: no connection is opened.

    :raises ValueError: no plugin has that name (the message names the
        option)
    """
    [(name, cls)] = plugins.load(NAMESPACE, [conf.qga_polling.discovery],
                                 OPTION, KIND, invoke=False)
    return cls.libvirt_uri(plugins.register(
        conf, plugins.group_name(name, GROUP_SUFFIX), cls.CONFIG_OPTS))


def host_name(conf: cfg.ConfigOpts) -> str:
    """This compute host's name: ``[DEFAULT] host`` if registered.

    Nova and Ceilometer both call the host ``conf.host`` (default: the
    hostname); fall back to the hostname when this service does not
    register that option.
    """
    try:
        host = conf.host
    except cfg.NoSuchOptError:
        host = None
    return host or socket.gethostname()
