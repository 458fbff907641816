"""Collectors: one per group of meters, loaded by entry-point name.

Use :func:`load_collectors`; the contract is in :mod:`.base`.
"""

from __future__ import annotations

from oslo_config import cfg
from stevedore import named

from ceilometer_qga.collectors.base import Collector

NAMESPACE = 'ceilometer_qga.collectors'


def load_collectors(conf: cfg.ConfigOpts,
                    names: list[str] | None = None) -> list[Collector]:
    """Instantiate the collectors named in ``[qga_polling] collectors``.

    :raises ValueError: a name has no entry point (the message names the
        option and the unknown names)
    """
    wanted = list(conf.qga_polling.collectors if names is None else names)

    def missing(unknown: set[str]) -> None:
        raise ValueError(
            '[qga_polling] collectors: unknown collector(s) %s'
            % ', '.join(sorted(unknown)))

    manager = named.NamedExtensionManager(
        NAMESPACE, wanted, invoke_on_load=True, invoke_args=(conf,),
        name_order=True, on_missing_entrypoints_callback=missing,
        propagate_map_exceptions=True)
    return [ext.obj for ext in manager]
