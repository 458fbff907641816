#!/usr/bin/env python3
"""Print the commands that create qga-monitor's resource types in Gnocchi.

Ceilometer's Gnocchi publisher creates resources and metrics on the fly, but
not resource *types*: ``ceilometer-upgrade`` creates Ceilometer's own, and
anything else has to exist beforehand (Ceilometer's
``doc/source/contributor/new_resource_types.rst``).  The per-filesystem,
per-disk and per-interface meters of qga-monitor go to three new types
declared in ``etc/ceilometer/gnocchi_resources.yaml``; the instance-level
meters go to Ceilometer's ``instance`` type, which already exists.

Run with no argument, this prints one ``openstack metric resource-type
create`` command per type (the ``openstack`` client with gnocchiclient's
``metric`` plugin, authenticated as an admin)::

    python3 tools/gnocchi_resource_types.py | sh

The devstack plugin runs the same commands for the types Gnocchi does not
have yet.  The attribute names here must be the ones the YAML file maps,
which ``tests/unit/test_gnocchi_resources.py`` checks.
"""

from __future__ import annotations

import argparse
import shlex
import sys

#: Gnocchi string attributes: the bounds Ceilometer gives its own
#: (``ceilometer/gnocchi_client.py``); the collectors never emit longer
#: names (``ceilometer_qga.collectors.checks.MAX_NAME``).
_STRING = {'type': 'string', 'min_length': 0, 'max_length': 255}

#: resource type -> attribute -> Gnocchi attribute definition
RESOURCE_TYPES: dict[str, dict[str, dict[str, object]]] = {
    'instance_guest_filesystem': {
        'instance_id': {'type': 'uuid', 'required': True},
        'mountpoint': dict(_STRING, required=True),
        # Windows agents and some virtual filesystems leave these out.
        'fstype': dict(_STRING, required=False),
        'device': dict(_STRING, required=False),
    },
    'instance_guest_disk': {
        'instance_id': {'type': 'uuid', 'required': True},
        'name': dict(_STRING, required=True),
    },
    'instance_guest_interface': {
        'instance_id': {'type': 'uuid', 'required': True},
        'name': dict(_STRING, required=True),
        # Not every interface has a hardware address (tunnels, Windows).
        'mac': dict(_STRING, required=False),
    },
}


def attribute_argument(name: str, definition: dict[str, object]) -> str:
    """``--attribute`` value in gnocchiclient's syntax.

    ``name:type:required[:option=value...]``, e.g.
    ``mountpoint:string:true:min_length=0:max_length=255``.
    """
    parts = [name, str(definition['type']),
             'true' if definition['required'] else 'false']
    parts.extend('%s=%s' % (key, value)
                 for key, value in definition.items()
                 if key not in ('type', 'required'))
    return ':'.join(parts)


def create_command(resource_type: str) -> list[str]:
    """The ``openstack metric resource-type create`` command of one type."""
    command = ['openstack', 'metric', 'resource-type', 'create']
    for name, definition in RESOURCE_TYPES[resource_type].items():
        command += ['--attribute', attribute_argument(name, definition)]
    command.append(resource_type)
    return command


def main(argv: list[str] | None = None) -> int:
    """Print one shell command per resource type, in a stable order."""
    parser = argparse.ArgumentParser(
        description='Print the "openstack metric resource-type create" '
                    'commands for the Gnocchi resource types of '
                    'qga-monitor.')
    parser.parse_args(argv)
    for resource_type in RESOURCE_TYPES:
        print(shlex.join(create_command(resource_type)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
