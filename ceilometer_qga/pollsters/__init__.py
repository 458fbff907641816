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

"""Our collectors as Ceilometer pollsters (``ceilometer.poll.compute``).

Only Ceilometer's polling agent imports this package: ``ceilometer_qga``
itself, and ``qga-polling``, never do, so Ceilometer stays an optional
dependency.  Entry points name one pollster per meter of the catalogue
(:mod:`ceilometer_qga.meters`), so ``polling.yaml`` selects them by meter
name.

* :mod:`.guest_agent` -- the pollster classes, one declaration per meter;
* :mod:`.polling_cycle` -- polls every guest once per Ceilometer polling
  cycle, for all pollsters, with our per-guest bounds and sessions;
* :mod:`.instance_guests` -- Ceilometer's instances turned into our guests;
* :mod:`.loop_thread` -- the one asyncio loop our transports live on;
* :mod:`.options` -- our options on Ceilometer's configuration object.
"""
