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

"""State-change events from our pollsters inside Ceilometer's polling agent.

Real here: Ceilometer 27's ``AgentManager`` and polling task (in this
process, as ``test_ceilometer_plugin`` runs them) loading our pollsters
with ``[guest_agent_events] enabled``; libvirt's in-process test driver
holding a Nova domain whose monitor channel is a real ``qemu-ga`` 7.2
stand-in; RabbitMQ (a vhost of this module's own), where our own
oslo.messaging notifier sends the events -- Ceilometer's publisher path
carries samples only.  The samples go to oslo.messaging's ``test`` driver,
as in ``test_ceilometer_plugin``.
"""

from __future__ import annotations

import threading
import uuid

from ceilometer import messaging as ceilometer_messaging
from ceilometer.polling import manager as polling_manager
from ceilometer import service as ceilometer_service
from oslo_config import cfg
import oslo_messaging
from oslo_messaging.notify import _impl_test
import pytest

from ceilometer_qga.pollsters import polling_cycle
from tests.fixtures import nova_domain
from tests.fixtures import processes as processes_mod
from tests.fixtures import rabbit
from tests.fixtures.rabbit import queue_consumers

pytestmark = pytest.mark.functional


class Capture:
    def __init__(self):
        self.payloads = []
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.payloads.append((publisher_id, event_type, payload))
        return oslo_messaging.NotificationResult.HANDLED

    def states(self, instance_id):
        with self.lock:
            return [p['state'] for _pub, _t, p in self.payloads
                    if p['instance_id'] == instance_id]


def test_pollsters_send_one_event_per_change(tmp_path, rabbit_vhost,
                                             hypervisor, qga_guest):
    url = rabbit.vhost_url(rabbit_vhost)
    (tmp_path / 'pollsters.d').mkdir()
    polling_yaml = tmp_path / 'polling.yaml'
    polling_yaml.write_text('sources:\n  - name: guest_agent\n'
                            '    interval: 300\n    meters:\n'
                            '      - "guest.agent.up"\n')
    conf_file = tmp_path / 'ceilometer.conf'
    conf_file.write_text(f"""[DEFAULT]
host = compute-test
libvirt_uri = test:///default
pollsters_definitions_dirs = {tmp_path}/pollsters.d
[polling]
cfg_file = {polling_yaml}
threads_to_process_pollsters = 0
[publisher_notifier]
telemetry_driver = test
[oslo_messaging_notifications]
transport_url = {url}
[qga_polling]
command_timeout = 0.5
guest_budget = 2
heartbeat_interval = 0
[guest_agent_events]
enabled = true
""")
    conf = ceilometer_service.prepare_service(['ceilometer-polling'],
                                              [str(conf_file)])
    instance_id = str(uuid.uuid4())
    hypervisor.start(nova_domain.nova_domain_xml(nova_domain.Server(
        uuid=instance_id, display_name='web-1',
        domain_name='instance-%s' % instance_id[:8],
        channels=((nova_domain.MONITOR, qga_guest.socket),))))

    listen_conf = cfg.ConfigOpts()
    listen_conf([])
    transport = oslo_messaging.get_notification_transport(listen_conf,
                                                          url=url)
    capture = Capture()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications',
                                          exchange='ceilometer')],
        [capture], executor='threading', pool='qga-test-events')
    listener.start()
    _impl_test.reset()
    amqp = 'amqp://guest:guest@%s:%d/%s' % (rabbit.HOST, rabbit.PORT,
                                            rabbit_vhost)
    try:
        # A notification sent before its queue is bound is dropped.
        processes_mod.wait_until(
            lambda: queue_consumers(amqp, 'qga-test-events') >= 1, 30,
            'the capture listener')
        manager = polling_manager.AgentManager(0, conf,
                                               namespaces=['compute'])
        manager.polling_manager = polling_manager.PollingManager(conf)
        task = manager.setup_polling_tasks()[300]
        task.poll_and_notify()
        processes_mod.wait_until(lambda: capture.states(instance_id), 30,
                                 'the first state event')
        task.poll_and_notify()   # same state: nothing new
        qga_guest.stop()
        task.poll_and_notify()
        processes_mod.wait_until(
            lambda: len(capture.states(instance_id)) >= 2, 30,
            'the state change event')
        assert capture.states(instance_id) == ['ok', 'not_connected']
        publisher, event_type, payload = capture.payloads[-1]
        assert event_type == 'guest_agent.state.change'
        assert publisher == 'qga-monitor.compute-test'
        assert payload['liveness'] == 'down'
        assert payload['previous_state'] == 'ok'
        assert payload['project_id'] == nova_domain.PROJECT_ID
        assert payload['channel'] == nova_domain.MONITOR
    finally:
        polling_cycle.close_all()
        listener.stop()
        listener.wait()
        transport.cleanup()
        for t in list(ceilometer_messaging.TRANSPORTS.values()):
            t.cleanup()
        ceilometer_messaging.TRANSPORTS.clear()
        _impl_test.reset()
