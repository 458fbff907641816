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

"""An Aodh event alarm fires when a guest's agent dies, not when it pauses.

Real here, every one a process of its own except the capture listener:

* ``qga-polling`` (the console script's module, long-running) with
  ``[guest_agent_events] enabled``, libvirt discovery of a ``test:///``
  node file of Nova domains (libvirt's test driver: the one part that
  stands in, for a hypervisor; its domains' state is fixed at start, so
  the paused guest is paused from the start), the socket transport to
  real ``qemu-ga`` 7.2 stand-ins on the dedicated channel, heartbeat every
  second;
* Ceilometer 27's ``ceilometer-agent-notification`` with our
  ``event_definitions.yaml`` and ``event_pipeline.yaml``;
* Aodh 23's API, listener and notifier on PostgreSQL
  (:mod:`tests.fixtures.aodh`);
* RabbitMQ, a vhost of this module's own;
* an HTTP server in this process receiving the alarm's webhook action.

The guests: ``web`` (running, its agent answers, then is killed),
``stuck`` (running, its agent is frozen with SIGSTOP: the port stays open
and nothing answers -- a hung agent), ``paused`` (the domain is paused;
its agent is killed too).  An event alarm ``traits.liveness = down`` on
each of ``web`` and ``paused``.

The detection times (agent killed or hung -> our notification on the bus)
are printed and written to ``$QGA_TIMINGS_DIR/alarms.json`` when that is
set; they are not asserted: the machine's load decides them.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging
import pytest

from tests.fixtures.agents.qga_standin import StandinGuest
from tests.fixtures.aodh import alarming  # noqa: F401
from tests.fixtures.libvirt_test_driver import write_node_file
from tests.fixtures import nova_domain
from tests.fixtures.nova_domain import MONITOR
from tests.fixtures import processes as processes_mod
from tests.fixtures.rabbit import queue_consumers

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAUSED = 3  # virDomainState VIR_DOMAIN_PAUSED
WEB = '7a1e0c52-3f4b-4c8d-9e2f-0000000000a1'
STUCK = '7a1e0c52-3f4b-4c8d-9e2f-0000000000a2'
PAUSED_ID = '7a1e0c52-3f4b-4c8d-9e2f-0000000000a3'
HEARTBEAT = 1.0
COMMAND_TIMEOUT = 1.0
EVENT_TYPE = 'guest_agent.state.change'
TRAITS = {'instance_id', 'resource_id', 'project_id', 'user_id', 'host',
          'state', 'previous_state', 'liveness', 'previous_liveness',
          'agent_version', 'channel', 'service'}


class Capture:
    """oslo.messaging endpoint keeping notifications with arrival times."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str, dict]] = []
        self._lock = threading.Lock()

    def _keep(self, event_type, payload):
        with self._lock:
            self.items.append((time.monotonic(), event_type, payload))
        return oslo_messaging.NotificationResult.HANDLED

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._keep(event_type, payload)

    def sample(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._keep(event_type, payload)

    def find(self, predicate) -> list[tuple[float, str, dict]]:
        with self._lock:
            return [i for i in self.items if predicate(i[1], i[2])]


@contextlib.contextmanager
def listen(transport_url: str, topic: str, capture: Capture):
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic, exchange='ceilometer')],
        [capture], executor='threading', pool='qga-test-' + topic)
    listener.start()
    try:
        yield
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


class Webhook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get('Content-Length', 0))
        Webhook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def ours(state=None, instance=None):
    """Predicate on our raw notifications."""
    def match(event_type, payload):
        return (event_type == EVENT_TYPE
                and (instance is None or payload['instance_id'] == instance)
                and (state is None or payload['state'] == state))
    return match


def ceilometer_event(instance):
    """Predicate on Ceilometer's events (its notifier publisher's payload)."""
    def match(event_type, payload):
        return any(e.get('event_type') == EVENT_TYPE
                   and {t[0]: t[2] for t in e['traits']}.get('instance_id') == instance
                   for e in (payload if isinstance(payload, list) else [payload]))
    return match


def traits_of(payload, instance):
    for e in (payload if isinstance(payload, list) else [payload]):
        traits = {t[0]: t[2] for t in e['traits']}
        if traits.get('instance_id') == instance:
            return traits
    raise KeyError(instance)


def test_event_alarm_fires_on_a_killed_agent_not_a_paused_guest(
        alarming, short_tmpdir, processes):  # noqa: F811
    workdir = short_tmpdir
    web = StandinGuest('web', workdir).start()
    stuck = StandinGuest('stuck', workdir).start()
    paused = StandinGuest('paused', workdir).start()
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = 'http://127.0.0.1:%d/' % server.server_address[1]
    timings = {}
    try:
        def dom(uuid, name, display, sock, state=None):
            return (nova_domain.nova_domain_xml(nova_domain.Server(
                uuid=uuid, domain_name=name, display_name=display,
                channels=((MONITOR, sock),))), state)
        uri = write_node_file(os.path.join(workdir, 'node.xml'), [
            dom(WEB, 'instance-000000a1', 'web', web.socket),
            dom(STUCK, 'instance-000000a2', 'stuck', stuck.socket),
            dom(PAUSED_ID, 'instance-000000a3', 'paused', paused.socket,
                PAUSED)])
        api = alarming.api(nova_domain.PROJECT_ID, nova_domain.USER_ID)
        alarms = {
            instance: api.create_event_alarm(
                'agent-down-%s' % name, EVENT_TYPE,
                [{'field': 'traits.instance_id', 'op': 'eq', 'type': 'string',
                  'value': instance},
                 {'field': 'traits.liveness', 'op': 'eq', 'type': 'string',
                  'value': 'down'}],
                [hook])['alarm_id']
            for name, instance in (('web', WEB), ('paused', PAUSED_ID))}

        conf = os.path.join(workdir, 'qga-polling.conf')
        with open(conf, 'w') as f:
            f.write(f"""[DEFAULT]
host = alarm-test
transport_url = {alarming.transport_url}
log_file = {workdir}/qga-polling.log
debug = true
[qga_polling]
discovery = libvirt
transport = socket
publishers = file://{workdir}/samples.jsonl
interval = 300
heartbeat_interval = {HEARTBEAT}
command_timeout = {COMMAND_TIMEOUT}
guest_budget = 5
[libvirt_discovery]
uri = {uri}
[guest_agent_events]
enabled = true
state_file = {workdir}/agent-states.json
""")
        raw, events = Capture(), Capture()
        with listen(alarming.transport_url, 'notifications', raw), \
                listen(alarming.transport_url, 'event', events):
            processes_mod.wait_until(
                lambda: all(
                    queue_consumers(alarming.amqp_url, q) >= 1
                    for q in ('qga-test-notifications', 'qga-test-event')),
                30, 'capture listeners')
            proc = processes.start(
                [sys.executable, '-m', 'ceilometer_qga.cmd.polling',
                 '--config-file', conf], cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            # The first sweep: every guest's state, once.
            processes_mod.wait_until(
                lambda: all(raw.find(ours(instance=i))
                            for i in (WEB, STUCK, PAUSED_ID)), 60,
                'the first sweep\'s state events')
            assert raw.find(ours('ok', WEB))
            assert raw.find(ours('paused', PAUSED_ID))[0][2]['liveness'] == 'unknown'
            # Ceilometer's agent made an event with our traits of it.
            processes_mod.wait_until(
                lambda: events.find(ceilometer_event(WEB)), 60,
                'Ceilometer\'s event of web')
            traits = traits_of(events.find(ceilometer_event(WEB))[0][2], WEB)
            assert TRAITS <= set(traits), traits
            assert traits['state'] == 'ok' and traits['liveness'] == 'up'
            assert traits['previous_state'] == 'unknown'
            assert traits['host'] == 'alarm-test'
            assert traits['project_id'] == nova_domain.PROJECT_ID
            assert traits['user_id'] == nova_domain.USER_ID
            assert traits['channel'] == MONITOR
            assert traits['agent_version'].startswith('7.')

            # The paused guest's agent dies too: the domain is paused, the
            # poller does not ask it, no "down".
            paused.stop()
            # A hung agent: SIGSTOP keeps its port open, nothing answers.
            os.kill(stuck.pid, signal.SIGSTOP)
            hung_at = time.monotonic()
            processes_mod.wait_until(lambda: raw.find(ours('timeout', STUCK)),
                                     60, 'stuck\'s timeout event')
            timings['hung_dedicated_s'] = (
                raw.find(ours('timeout', STUCK))[0][0] - hung_at)
            os.kill(stuck.pid, signal.SIGCONT)

            killed_at = time.monotonic()
            web.stop()
            processes_mod.wait_until(
                lambda: raw.find(lambda t, p: ours(instance=WEB)(t, p)
                                 and p['liveness'] == 'down'),
                60, 'web\'s down event')
            down = raw.find(lambda t, p: ours(instance=WEB)(t, p)
                            and p['liveness'] == 'down')[0]
            timings['killed_dedicated_s'] = down[0] - killed_at
            assert down[2]['previous_state'] == 'ok'

            processes_mod.wait_until(
                lambda: api.alarm(alarms[WEB])['state'] == 'alarm', 60,
                'web\'s alarm to fire')
            timings['killed_to_alarm_s'] = time.monotonic() - killed_at
            processes_mod.wait_until(
                lambda: any(h.get('alarm_id') == alarms[WEB]
                            for h in Webhook.received), 60,
                'the webhook of web\'s alarm')
            # Aodh's listener takes the events in order: web's down came
            # after paused's state, so paused's alarm has been evaluated.
            assert api.alarm(alarms[PAUSED_ID])['state'] != 'alarm'
            assert not raw.find(lambda t, p: ours(instance=PAUSED_ID)(t, p)
                                and p['liveness'] == 'down')
            # One event per change: the heartbeats since sent no repeats.
            assert len(raw.find(ours('ok', WEB))) == 1
            assert len(raw.find(ours('timeout', STUCK))) == 1
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    finally:
        server.shutdown()
        for guest in (web, stuck, paused):
            if guest.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(guest.pid, signal.SIGCONT)
            guest.stop()
    print('detection timings: %s' % json.dumps(timings))
    out = os.environ.get('QGA_TIMINGS_DIR')
    if out:
        with open(os.path.join(out, 'alarms.json'), 'w') as f:
            json.dump(timings, f)
