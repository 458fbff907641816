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

"""The domain-hook contract (entry points ``nova_qga.domain_hooks``).

A domain hook edits the libvirt guest definition that Nova's libvirt driver
generated, just before libvirt receives it.  ``[qga] domain_hooks`` names
the hooks and their order; :class:`nova_qga.hook_chain.HookChain` runs them.

Contract:

* :meth:`DomainHook.apply` gets the parsed ``<domain>`` element (lxml), the
  Nova ``Instance`` (its ``flavor`` and ``system_metadata`` included) and the
  ``ImageMeta`` the driver used, and edits the element in place through
  :mod:`nova_qga.domain_xml`; it returns nothing.
* Idempotent: applied to its own output it changes nothing.  It never adds
  a device the domain already has (Nova adds the standard agent channel
  itself for ``hw_qemu_guest_agent=yes``).
* It may raise.  :class:`HookError` means "not for this domain" and is
  logged as one error line; anything else is logged with its traceback.
  Either way the chain drops this hook's edits for this domain only and
  goes on: a hook never fails a spawn.
* The chain calls hooks only for ``kvm``/``qemu`` domains of instances that
  have not opted out (``qga:monitor=false``); hooks need not check again.
"""

from __future__ import annotations

import abc
from typing import Any

from lxml import etree
from oslo_config import cfg


class HookError(Exception):
    """A hook cannot apply to this domain; the message says why."""


class DomainHook(abc.ABC):
    """Base class of every domain hook."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def apply(self, domain: etree._Element, instance: Any,
              image_meta: Any) -> None:
        """Edit ``domain`` in place for ``instance`` (see module docstring)."""
