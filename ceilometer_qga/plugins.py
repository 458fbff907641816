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

Options follow os-vif's plugin contract (``os_vif/plugin.py``): a plugin
class declares its options in a ``CONFIG_OPTS`` class attribute, the loader
registers them in the plugin's own group, ``<name>_<kind>``
(``[libvirt_discovery]``, ``[disk_collector]``), and hands the plugin that
group (:func:`register`).  A plugin reads its own group and the poller's
shared options (``[qga_polling]``, ``[DEFAULT] host``), never another
plugin's group, so that plugins can be added or swapped without one
depending on how another is configured.  :func:`installed_opts` gives the
groups of every installed plugin, for ``oslo-config-generator`` and the
start-up check.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from oslo_config import cfg
from stevedore import extension
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


def group_name(name: str, group_suffix: str | None) -> str:
    """The option group of plugin ``name``: ``<name>_<group_suffix>``.

    Without a suffix, the name itself: a kind whose plugins no option
    names (the sweep observers) names its entry points after their groups.
    """
    return name if group_suffix is None else '%s_%s' % (name, group_suffix)


def register(conf: cfg.ConfigOpts, group: str,
             opts: Sequence[cfg.Opt]) -> Any:
    """Register ``opts`` in ``group`` of ``conf``; return that group.

    As os-vif's ``PluginBase.load``: a plugin without options gets an
    empty group of its own, so every plugin reads ``opts.<name>`` the same
    way.  Registering the same options again changes nothing.
    """
    if not opts:
        return cfg.ConfigOpts.GroupAttr(cfg.ConfigOpts(), cfg.OptGroup(group))
    conf.register_opts(list(opts), group=group)
    return conf[group]


def installed_opts(namespace: str, group_suffix: str | None
                   ) -> list[tuple[str, list[cfg.Opt]]]:
    """``(group, CONFIG_OPTS)`` of every installed plugin that has options.

    Sorted by group; a plugin that cannot be imported is left out (the
    loader reports it when it is chosen).
    """
    manager = extension.ExtensionManager(namespace, invoke_on_load=False)
    return sorted((group_name(ext.name, group_suffix),
                   list(ext.plugin.CONFIG_OPTS))
                  for ext in manager
                  if getattr(ext.plugin, 'CONFIG_OPTS', None))


def load(namespace: str, names: Sequence[str], option: str, kind: str,
         args: tuple[Any, ...] = (), invoke: bool = True,
         error: type[Exception] = ValueError,
         conf: cfg.ConfigOpts | None = None,
         group_suffix: str | None = None) -> list[tuple[str, Any]]:
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
    :param conf: with ``group_suffix``, where each plugin's
        ``CONFIG_OPTS`` are registered, in group ``<name>_<group_suffix>``;
        that group is then passed to the constructor after ``args``
    :param group_suffix: see ``conf``
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
        namespace, names, invoke_on_load=False, name_order=True,
        on_load_failure_callback=failed,
        on_missing_entrypoints_callback=missing)
    if not invoke:
        return [(ext.name, ext.plugin) for ext in manager]
    built = []
    for ext in manager:
        own: tuple[Any, ...] = ()
        try:
            if group_suffix is not None and conf is not None:
                own = (register(conf, group_name(ext.name, group_suffix),
                                getattr(ext.plugin, 'CONFIG_OPTS', ())),)
            built.append((ext.name, ext.plugin(*args, *own)))
        except Exception as exc:
            failed(manager, ext.entry_point, exc)
    return built
