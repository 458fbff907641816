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

"""Loading and running the domain hooks over a guest's XML.

:class:`HookChain` is what the driver uses: it loads the hooks named in
``[qga] domain_hooks`` once, at driver start, and applies them to each
domain XML the parent driver generates.  Whatever goes wrong while applying
them is logged with the instance uuid and never reaches the caller: the
worst outcome is the XML exactly as Nova made it.
"""

from __future__ import annotations

from collections.abc import Sequence
import copy
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from nova_qga import domain_xml
from nova_qga.hooks import base
from nova_qga import opt_out
from nova_qga import plugins

LOG = logging.getLogger(__name__)

NAMESPACE = 'nova_qga.domain_hooks'

#: Only QEMU guests have virtio-serial channels and a qemu-ga to talk to.
SUPPORTED_VIRT_TYPES = frozenset(('kvm', 'qemu'))


class HookLoadError(RuntimeError):
    """``[qga] domain_hooks`` names a hook that cannot be loaded."""


class HookChain:
    """An ordered list of named :class:`~nova_qga.hooks.base.DomainHook`."""

    def __init__(self, conf: cfg.ConfigOpts,
                 hooks: Sequence[tuple[str, base.DomainHook]]) -> None:
        self.conf = conf
        self.hooks = list(hooks)
        self._reported_virt_types: set[str | None] = set()

    @classmethod
    def load(cls, conf: cfg.ConfigOpts) -> HookChain:
        """Load the hooks named in ``[qga] domain_hooks``, in that order.

        :raises HookLoadError: a name is not an entry point of
            ``nova_qga.domain_hooks`` or its plugin fails to load; raised at
            driver start so that a typo stops nova-compute instead of
            silently leaving every instance without its channels.
        """
        hooks = plugins.load(NAMESPACE, conf.qga.domain_hooks,
                             '[qga] domain_hooks', 'domain hook',
                             args=(conf,), error=HookLoadError)
        return cls(conf, hooks)

    @property
    def names(self) -> list[str]:
        """Names of the hooks, in the order they run."""
        return [name for name, _hook in self.hooks]

    def apply(self, xml: str, instance: Any, image_meta: Any) -> str:
        """Return ``xml`` with every applicable hook applied.

        Returns ``xml`` itself, untouched, when there are no hooks, the
        domain is not kvm/qemu, or the instance opted out.  Never raises.
        """
        if not self.hooks:
            return xml
        try:
            return self._apply(xml, instance, image_meta)
        except Exception:
            LOG.exception('Domain hooks failed for instance %s; the domain '
                          'XML is used as Nova generated it',
                          _uuid(instance), instance=instance)
            return xml

    def _apply(self, xml: str, instance: Any, image_meta: Any) -> str:
        domain = domain_xml.parse_domain(xml)

        virt_type = domain_xml.virt_type(domain)
        if virt_type not in SUPPORTED_VIRT_TYPES:
            if virt_type not in self._reported_virt_types:
                self._reported_virt_types.add(virt_type)
                LOG.info('Domain hooks %(hooks)s apply only to kvm and qemu '
                         'guests; %(type)s guests keep the domain XML Nova '
                         'generates (logged once)',
                         {'hooks': ', '.join(self.names), 'type': virt_type})
            return xml

        if self.conf.qga.allow_opt_out and self._opted_out(instance):
            return xml

        for name, hook in self.hooks:
            # Each hook edits a copy, so one that fails halfway leaves
            # nothing of its work behind.
            candidate = copy.deepcopy(domain)
            try:
                hook.apply(candidate, instance, image_meta)
            except base.HookError as exc:
                LOG.error('Domain hook %(hook)s skipped for instance '
                          '%(uuid)s: %(reason)s',
                          {'hook': name, 'uuid': _uuid(instance),
                           'reason': exc}, instance=instance)
                continue
            except Exception:
                LOG.exception('Domain hook %(hook)s failed for instance '
                              '%(uuid)s; going on without its changes',
                              {'hook': name, 'uuid': _uuid(instance)},
                              instance=instance)
                continue
            domain = candidate
        return domain_xml.to_xml(domain)

    def _opted_out(self, instance: Any) -> bool:
        try:
            decision = opt_out.resolve(instance)
        except Exception:
            # The instance is still spawned with the hooks: opting out is
            # the exception, and an unreadable flavor is not a request.
            LOG.exception('Cannot read %(key)s of instance %(uuid)s; '
                          'applying the domain hooks',
                          {'key': opt_out.KEY, 'uuid': _uuid(instance)},
                          instance=instance)
            return False
        for error in decision.errors:
            LOG.error('Instance %(uuid)s: %(error)s (expected true or '
                      'false); ignoring it, so the domain hooks still apply '
                      'unless the other source says false',
                      {'uuid': _uuid(instance), 'error': error},
                      instance=instance)
        if decision.opted_out:
            LOG.info('Instance %(uuid)s opted out of guest-agent monitoring '
                     '(%(key)s=false in its %(where)s); domain hooks '
                     'skipped', {'uuid': _uuid(instance), 'key': opt_out.KEY,
                                 'where': ' and '.join(decision.opted_out_by)},
                     instance=instance)
        return decision.opted_out


def _uuid(instance: Any) -> str:
    return getattr(instance, 'uuid', '<unknown>')
