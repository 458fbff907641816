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

"""Create qga-monitor's resource types in Gnocchi, or print the commands.

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

    qga-gnocchi-resource-types | sh

Running those commands a second time fails (``Resource type ... already
exists (HTTP 409)``).  ``--apply`` does the work itself, idempotently,
through gnocchiclient (which Ceilometer depends on, so it is wherever
``ceilometer-agent-notification`` runs)::

    qga-gnocchi-resource-types --apply

It creates each type Gnocchi does not have, adds the attributes an existing
type lacks, leaves a type that is already right alone (one line per type
says which), and exits 1, changing nothing of that type, when an attribute
Gnocchi has is defined differently (Gnocchi cannot change an attribute).
It authenticates as the ``openstack`` client does: the ``OS_*`` variables
or ``--os-*`` options of keystoneauth (``OS_AUTH_TYPE=password``,
``OS_AUTH_URL``... with Keystone; ``OS_AUTH_TYPE=gnocchi-basic`` with
gnocchiclient's ``GNOCCHI_USER`` and ``GNOCCHI_ENDPOINT`` for a Gnocchi in
basic auth mode).

The devstack plugin runs the printed commands for the types Gnocchi does
not have yet.  The attribute names here must be the ones the YAML file maps,
which ``tests/unit/test_gnocchi_resources.py`` checks.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

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


class ResourceTypeConflict(Exception):
    """Gnocchi has an attribute of ours with another definition."""


def _same(ours: dict[str, object], theirs: dict[str, Any]) -> bool:
    # Gnocchi returns every option of an attribute (e.g. min_length and
    # max_length of a string it was given without them); compare ours only.
    return all(theirs.get(key) == value for key, value in ours.items())


def missing_attributes(resource_type: str,
                       existing: dict[str, dict[str, Any]]) -> list[str]:
    """Our attributes that ``existing`` (Gnocchi's definition) lacks.

    :raises ResourceTypeConflict: an attribute both have differs.
    """
    missing = []
    for name, definition in RESOURCE_TYPES[resource_type].items():
        if name not in existing:
            missing.append(name)
        elif not _same(definition, existing[name]):
            raise ResourceTypeConflict(
                'resource type %s: attribute %s is %s in Gnocchi, expected '
                '%s; Gnocchi cannot change an attribute: delete the type '
                '(and its resources) or keep it' % (
                    resource_type, name, existing[name], definition))
    return missing


def add_operations(resource_type: str, names: list[str]) -> list[dict[str, Any]]:
    """JSON-patch operations adding attributes to an existing type.

    Gnocchi needs a value to give the existing resources for a required
    attribute (``options.fill``); only optional ones can be added.
    """
    operations = []
    for name in names:
        definition = dict(RESOURCE_TYPES[resource_type][name])
        if definition['required']:
            raise ResourceTypeConflict(
                'resource type %s exists without the required attribute %s, '
                'which cannot be added to existing resources; delete the '
                'type (and its resources) first' % (resource_type, name))
        operations.append({'op': 'add', 'path': '/attributes/%s' % name,
                           'value': definition})
    return operations


def apply(client: Any, out: Any = sys.stdout) -> int:
    """Create or complete every type through a gnocchiclient ``Client``.

    Prints ``created``, ``updated`` or ``unchanged`` per type; returns the
    exit status (1 when a type conflicts with ours, after the others).
    """
    existing = {rt['name']: rt for rt in client.resource_type.list()}
    status = 0
    for resource_type, attributes in RESOURCE_TYPES.items():
        try:
            if resource_type not in existing:
                client.resource_type.create(
                    {'name': resource_type, 'attributes': attributes})
                print('%s: created' % resource_type, file=out)
                continue
            names = missing_attributes(
                resource_type, existing[resource_type].get('attributes', {}))
            if not names:
                print('%s: unchanged' % resource_type, file=out)
                continue
            client.resource_type.update(resource_type,
                                        add_operations(resource_type, names))
            print('%s: updated (added %s)' % (resource_type, ', '.join(names)),
                  file=out)
        except ResourceTypeConflict as exc:
            print('error: %s' % exc, file=sys.stderr)
            status = 1
    return status


def gnocchi_client(args: argparse.Namespace) -> Any:
    """A gnocchiclient ``Client`` from keystoneauth's command-line options."""
    from gnocchiclient import client as gnocchi_client_mod
    from keystoneauth1 import loading

    auth = loading.load_auth_from_argparse_arguments(args)
    session = loading.load_session_from_argparse_arguments(args, auth=auth)
    return gnocchi_client_mod.Client(
        '1', session=session,
        adapter_options={'interface': args.os_interface,
                         'region_name': args.os_region_name})


def main(argv: list[str] | None = None) -> int:
    """Print the commands (default) or apply them (``--apply``)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description='Print the "openstack metric resource-type create" '
                    'commands for the Gnocchi resource types of '
                    'qga-monitor, or (--apply) create or complete the '
                    'types in Gnocchi, idempotently.')
    parser.add_argument('--apply', action='store_true',
                        help='create the missing types and attributes in '
                             'Gnocchi instead of printing commands; '
                             'authenticates with the OS_* variables or '
                             '--os-* options, like the openstack client')
    if '--apply' in argv:
        from keystoneauth1 import loading

        loading.register_auth_argparse_arguments(parser, argv, default='password')
        loading.register_session_argparse_arguments(parser)
        parser.add_argument('--os-interface', default='public',
                            help='endpoint interface of the metric service')
        parser.add_argument('--os-region-name', default=None,
                            help='region of the metric service')
    args = parser.parse_args(argv)
    if args.apply:
        from gnocchiclient import exceptions as gnocchi_exc
        from keystoneauth1 import exceptions as ks_exc

        try:
            return apply(gnocchi_client(args))
        except (gnocchi_exc.ClientException, ks_exc.ClientException) as exc:
            print('error: Gnocchi: %s' % exc, file=sys.stderr)
            return 1
    for resource_type in RESOURCE_TYPES:
        print(shlex.join(create_command(resource_type)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
