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

"""Loading the domain hooks by entry-point name (``nova_qga.domain_hooks``).

nova_qga runs inside nova-compute and shares nothing with the poller
(``ceilometer_qga``) but the guest: this is its own small stevedore loader,
with the same wording of errors as the poller's, so that an operator reads
one kind of message whichever half refuses its configuration:

* the plugins come in the order the option lists them;
* a name without an entry point gives one error naming the option, the
  unknown names and the installed ones (``[qga] domain_hooks =
  'agent_chanel': no such domain hook; known: agent_channel,
  monitor_channel``);
* a plugin that cannot be loaded (import error, a constructor that fails)
  gives that error wrapped in the caller's error class, naming the option
  and the plugin; an error already of that class comes through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from stevedore import named


def known_names(namespace: str) -> list[str]:
    """Names of the installed plugins of ``namespace``, sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=namespace)})


def load(namespace: str, names: Sequence[str], option: str, kind: str,
         args: tuple[Any, ...] = (),
         error: type[Exception] = ValueError) -> list[tuple[str, Any]]:
    """``(name, plugin(*args))`` for each of ``names``, in their order.

    :param option: the option the names come from, for errors
        (``[qga] domain_hooks``)
    :param kind: what a plugin is, for errors (``domain hook``)
    :raises error: see the module docstring
    """
    names = list(names)
    if not names:
        return []

    def missing(unknown: Any) -> None:
        ordered = [n for n in names if n in set(unknown)]
        raise error('%s = %s: no such %s; known: %s' % (
            option, ', '.join(repr(n) for n in ordered), kind,
            ', '.join(known_names(namespace)) or '(none)'))

    def failed(_manager: Any, entry_point: Any, exc: Exception) -> None:
        if isinstance(exc, error):
            raise exc
        raise error('%s: %s %s (%s) cannot be loaded: %s' % (
            option, kind, entry_point.name, entry_point.value, exc)) from exc

    manager = named.NamedExtensionManager(
        namespace, names, invoke_on_load=True, invoke_args=args,
        name_order=True, on_load_failure_callback=failed,
        on_missing_entrypoints_callback=missing)
    return [(ext.name, ext.obj) for ext in manager]
