"""Load plugins by entry-point name: the one loader of every namespace.

Collectors (``ceilometer_qga.collectors``), discovery
(``ceilometer_qga.discovery``) and publishers (``ceilometer_qga.publishers``)
are all loaded here (``nova_qga`` has its own small loader, as the two
halves share nothing), like os-vif loads its plugins in one place
(``os_vif/__init__.py``): the
caller names the option the names came from, and gets

* the plugins in the order the option lists them;
* for a name without an entry point, one error that names the option, the
  unknown names and the installed ones
  (``[qga_polling] discovery = 'x': no such discovery plugin; known:
  libvirt, static``);
* for a plugin that cannot be loaded (import error, a constructor that
  fails), that error wrapped in the caller's error class with the option
  and the plugin named -- except an error that already is of that class
  (a plugin refusing its own configuration names its own option), which
  comes through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from stevedore import named


def known_names(namespace: str) -> list[str]:
    """Names of the installed plugins of ``namespace``, sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=namespace)})


def unknown_message(option: str, unknown: Sequence[str], kind: str,
                    namespace: str) -> str:
    """The one wording of "no such plugin", naming the option."""
    return '%s = %s: no such %s; known: %s' % (
        option, ', '.join(repr(n) for n in unknown), kind,
        ', '.join(known_names(namespace)) or '(none)')


def load(namespace: str, names: Sequence[str], option: str, kind: str,
         args: tuple[Any, ...] = (), invoke: bool = True,
         error: type[Exception] = ValueError) -> list[tuple[str, Any]]:
    """``(name, plugin)`` for each of ``names``, in their order.

    :param namespace: the entry-point group
    :param names: the names, as the option lists them
    :param option: the option they come from, for errors
        (``[qga_polling] collectors``)
    :param kind: what a plugin is, for errors (``collector``)
    :param args: passed to each plugin's constructor
    :param invoke: build each plugin (``plugin(*args)``); otherwise return
        the classes
    :param error: the exception class raised (it takes one message)
    :raises error: see the module docstring
    """
    names = list(names)
    if not names:
        return []

    def missing(unknown: Any) -> None:
        ordered = [n for n in names if n in set(unknown)]
        raise error(unknown_message(option, ordered, kind, namespace))

    def failed(_manager: Any, entry_point: Any, exc: Exception) -> None:
        if isinstance(exc, error):
            raise exc
        raise error('%s: %s %s (%s) cannot be loaded: %s' % (
            option, kind, entry_point.name, entry_point.value, exc)) from exc

    manager = named.NamedExtensionManager(
        namespace, names, invoke_on_load=invoke, invoke_args=args,
        name_order=True, on_load_failure_callback=failed,
        on_missing_entrypoints_callback=missing)
    return [(ext.name, ext.obj if invoke else ext.plugin) for ext in manager]
