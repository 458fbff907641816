#!/usr/bin/env python3
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

"""Put qga-monitor's source into Ceilometer's polling.yaml, or keep it out.

Run by the devstack plugin with devstack's Python (PyYAML comes with
Ceilometer)::

    polling_yaml.py add POLLING_YAML SNIPPET [--interval SECONDS]
    polling_yaml.py exclude POLLING_YAML SNIPPET
    polling_yaml.py remove POLLING_YAML SNIPPET

``SNIPPET`` is ``etc/ceilometer/polling.yaml`` of this repository: one
source listing our meters.  Once qga-monitor is installed in Ceilometer's
environment, Ceilometer's compute agent finds our pollsters, and devstack's
polling.yaml (Ceilometer's ``polling_all.yaml``) selects every pollster
with ``"*"``.

``exclude`` makes sure no source selects our meters: a source that selects
by wildcard or by exclusion gets ``!<meter>`` exclusions, a source that
lists meters loses the names and patterns that select ours (and goes if
nothing is left), and our own source goes.  That is for
the ``qga-polling`` service, which must not poll the guests a second time
from inside Ceilometer.

``add`` does the same and then puts our source in (with ``--interval``):
our pollsters run in Ceilometer, each in our source only, since Ceilometer
polls a pollster once per matching source whenever the sources' intervals
differ.

``remove`` deletes our source and the exclusions of our meters; what was
taken out of other sources' lists stays out.  Each action is idempotent, and a
file that needs no change is left alone; one that does is rewritten by
PyYAML, so its comments are lost (devstack's copy has none).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from typing import Any

import yaml


def _load(path: str) -> dict[str, Any]:
    with open(path) as src:
        data = yaml.safe_load(src)
    sources = data.get('sources') if isinstance(data, dict) else None
    if not isinstance(sources, list):
        raise SystemExit('%s: not a polling definition (no "sources" list)'
                         % path)
    return data


def _our_source(snippet: str) -> dict[str, Any]:
    sources = _load(snippet)['sources']
    if len(sources) != 1:
        raise SystemExit('%s: expected exactly one source' % snippet)
    return sources[0]


def _selects_by_exclusion(meters: list[str]) -> bool:
    """A wildcard source, or one made of exclusions only (all but those)."""
    return '*' in meters or (bool(meters)
                             and all(m.startswith('!') for m in meters))


def exclude(polling: dict[str, Any],
            ours: dict[str, Any]) -> dict[str, Any]:
    """``polling`` in which no source selects a meter of ``ours``."""
    names = list(ours['meters'])
    sources = []
    for source in polling['sources']:
        if source.get('name') == ours['name']:
            continue
        source = dict(source)
        meters = list(source.get('meters') or [])
        if _selects_by_exclusion(meters):
            meters += ['!' + n for n in names if '!' + n not in meters]
        else:
            # Names and patterns ("guest.*") that select any of ours go:
            # Ceilometer refuses exclusions next to inclusions.
            meters = [m for m in meters
                      if not any(fnmatch.fnmatchcase(n, m) for n in names)]
            if not meters:
                # It selected only ours, and Ceilometer refuses an empty
                # list: our source replaces it (add) or nothing does.
                continue
        source['meters'] = meters
        sources.append(source)
    return dict(polling, sources=sources)


def add(polling: dict[str, Any], ours: dict[str, Any],
        interval: int | None = None) -> dict[str, Any]:
    """``polling`` with ``ours`` in it and our meters in no other source."""
    ours = dict(ours)
    if interval is not None:
        ours['interval'] = interval
    polling = exclude(polling, ours)
    return dict(polling, sources=polling['sources'] + [ours])


def remove(polling: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """``polling`` without ``ours`` and without the exclusions of ours."""
    excluded = {'!' + n for n in ours['meters']}
    sources = []
    for source in polling['sources']:
        if source.get('name') == ours['name']:
            continue
        source = dict(source)
        meters = list(source.get('meters') or [])
        kept = [m for m in meters if m not in excluded]
        # Exclusions only, and all of them ours: "all but ours" without
        # our source is "all" (an empty list would select nothing).
        source['meters'] = kept or (['*'] if meters else [])
        sources.append(source)
    return dict(polling, sources=sources)


def main(argv: list[str] | None = None) -> int:
    """Edit POLLING_YAML in place; the exit code of the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('action', choices=('add', 'exclude', 'remove'))
    parser.add_argument('polling_yaml')
    parser.add_argument('snippet')
    parser.add_argument('--interval', type=int,
                        help='interval of our source, in seconds (default: '
                             'the snippet\'s)')
    args = parser.parse_args(argv)
    if args.interval is not None and args.interval <= 0:
        parser.error('--interval must be positive')
    polling = _load(args.polling_yaml)
    ours = _our_source(args.snippet)
    if args.action == 'add':
        changed = add(polling, ours, args.interval)
    elif args.action == 'exclude':
        changed = exclude(polling, ours)
    else:
        changed = remove(polling, ours)
    if changed == polling:
        # Leave the file (and its layout) alone when there is nothing to do.
        return 0
    with open(args.polling_yaml, 'w') as dst:
        dst.write('---\n')
        yaml.safe_dump(changed, dst, default_flow_style=False,
                       sort_keys=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
