"""Discovery plugins: which guests run on this host.

Callers use :func:`load_discovery` and the
:class:`~ceilometer_qga.discovery.base.Discovery` contract; they never
import a plugin module.  Plugins are entry points in
``ceilometer_qga.discovery`` (``libvirt``, ``static``), chosen by
``[qga_polling] discovery``.
"""

from __future__ import annotations

import importlib.metadata
import socket

from oslo_config import cfg
from stevedore import driver
from stevedore import exception as stevedore_exc

from ceilometer_qga.discovery.base import Discovery

NAMESPACE = 'ceilometer_qga.discovery'


class DiscoveryError(Exception):
    """The source of truth could not be read (e.g. libvirt unreachable).

    :meth:`Discovery.discover` raises it instead of returning an empty
    list, so that "no guests" and "cannot tell" stay different things.
    """


def known_names() -> list[str]:
    """Names of the installed discovery plugins, sorted."""
    return sorted({ep.name for ep in
                   importlib.metadata.entry_points(group=NAMESPACE)})


def load_discovery(conf: cfg.ConfigOpts) -> Discovery:
    """Build the discovery plugin named by ``[qga_polling] discovery``.

    :raises ValueError: no plugin has that name, or the plugin refused its
        configuration (the message names the option).
    """
    name = conf.qga_polling.discovery
    try:
        # Load failures (a plugin's ValueError, ImportError...) propagate
        # as they are: stevedore's DriverManager re-raises them.
        manager = driver.DriverManager(NAMESPACE, name,
                                       invoke_on_load=True,
                                       invoke_args=(conf,))
    except stevedore_exc.NoMatches:
        raise ValueError(
            '[qga_polling] discovery = %r: no such discovery plugin; '
            'known: %s' % (name, ', '.join(known_names()) or '(none)')
        ) from None
    return manager.driver


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
