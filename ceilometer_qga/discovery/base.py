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

"""The discovery contract (entry points ``ceilometer_qga.discovery``).

A discovery plugin answers one question per sweep: which guests run on this
host right now, with which guest-agent channels.  ``[qga_polling]
discovery`` names the plugin.

Contract:

* :meth:`discover` returns a fresh list of
  :class:`~ceilometer_qga.guest.Guest` on every call: the active guests,
  with ``metadata['state']`` set to the power state in Ceilometer's words
  (``running``, ``paused``...; absent = unknown).  When the source cannot be
  read at all it raises :class:`~ceilometer_qga.discovery.DiscoveryError`,
  so that "no guests" and "cannot tell" stay different.
* It may block (libvirt calls); the poller calls it from a worker thread.
* A guest that disappears while being inspected is skipped, not an error.
* Configuration errors raise ``ValueError`` naming the option.
* Its options are its ``CONFIG_OPTS``, registered by the loader in group
  ``[<name>_discovery]`` and handed to the constructor (os-vif's plugin
  contract, see :mod:`ceilometer_qga.plugins`).
* A guest reachable through libvirt carries the connection URI in
  :attr:`~ceilometer_qga.guest.Guest.libvirt_uri`: the libvirt transport
  and the libvirt event listener use the hypervisor the guest was found on,
  and read no discovery option.
* :meth:`discover_one` answers the same question for one guest, when an
  event (libvirt's domain lifecycle events) says that guest changed; the
  default asks :meth:`discover` and keeps that guest.
"""

from __future__ import annotations

import abc

from typing import Any

from oslo_config import cfg

from ceilometer_qga.guest import Guest


class Discovery(abc.ABC):
    """Base class of every discovery plugin.

    :param conf: the poller's configuration (``[qga_polling]``,
        ``[DEFAULT] host``)
    :param opts: this plugin's own group (its :attr:`CONFIG_OPTS`)
    """

    #: this plugin's options, in its own group ``[<name>_discovery]``
    CONFIG_OPTS: list[cfg.Opt] = []

    def __init__(self, conf: cfg.ConfigOpts, opts: Any) -> None:
        self.conf = conf
        self.opts = opts

    @classmethod
    def libvirt_uri(cls, opts: Any) -> str | None:
        """The libvirt URI this plugin lists domains on, given its group.

        None (the default) for a plugin that does not use libvirt.  For
        whoever needs the hypervisor before any guest is found: the
        libvirt event listener.
        """
        return None

    @abc.abstractmethod
    def discover(self) -> list[Guest]:
        """Return the guests to poll now."""

    def discover_one(self, instance_id: str) -> Guest | None:
        """The guest ``instance_id`` as :meth:`discover` would list it now;
        None when it would not be listed (stopped, gone, not a guest).

        :raises ceilometer_qga.discovery.DiscoveryError: as :meth:`discover`
        """
        for guest in self.discover():
            if guest.instance_id == instance_id:
                return guest
        return None

    def close(self) -> None:
        """Release connections (libvirt); default: nothing to do."""
