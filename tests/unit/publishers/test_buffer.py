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

"""SampleBuffer bounds and logging, and the BufferedPublisher delivery loop.

The loop is driven through ``Switchable``, a minimal publisher written here
that implements the plugin contract (``_deliver``) over a list and fails on
demand.  It stands in for no external component: it is the smallest real
subclass, so that batch boundaries and failure points can be chosen
exactly.  The real publishers are tested in test_file.py and against
RabbitMQ in tests/functional/test_notifier_rabbit.py.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse

import pytest

from ceilometer_qga.publishers import buffer

BUFFER_LOGGER = 'ceilometer_qga.publishers.buffer'


def _samples(start: int, stop: int) -> list[dict]:
    return [{'counter_name': 'guest.load.1', 'n': n} for n in range(start, stop)]


def _numbers(items) -> list[int]:
    return [item['n'] for item in items]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == BUFFER_LOGGER and r.levelno == logging.WARNING]


# -- SampleBuffer ------------------------------------------------------------

def test_drops_the_oldest_beyond_capacity():
    buf = buffer.SampleBuffer(5, 'test')
    assert buf.extend(_samples(0, 3)) == 0
    assert buf.extend(_samples(3, 8)) == 3
    assert _numbers(buf.take()) == [3, 4, 5, 6, 7]
    assert buf.dropped == 3
    assert len(buf) == 0


def test_take_returns_the_oldest_first():
    buf = buffer.SampleBuffer(10, 'test')
    buf.extend(_samples(0, 5))
    assert _numbers(buf.take(2)) == [0, 1]
    assert _numbers(buf.take(10)) == [2, 3, 4]
    assert buf.take(3) == []


def test_put_back_restores_order():
    buf = buffer.SampleBuffer(10, 'test')
    buf.extend(_samples(0, 5))
    batch = buf.take(2)
    buf.extend(_samples(5, 7))
    assert buf.put_back(batch) == 0
    assert _numbers(buf.take()) == [0, 1, 2, 3, 4, 5, 6]


def test_put_back_into_a_full_buffer_drops_the_put_back_first():
    # While a batch was out, newer samples filled the buffer: the batch is
    # older than all of them, so it is what goes.
    buf = buffer.SampleBuffer(4, 'test')
    buf.extend(_samples(0, 4))
    batch = buf.take(2)
    buf.extend(_samples(4, 6))
    assert buf.put_back(batch) == 2
    assert _numbers(buf.take()) == [2, 3, 4, 5]
    assert buf.dropped == 2


def test_zero_capacity_keeps_nothing():
    buf = buffer.SampleBuffer(0, 'test')
    assert buf.extend(_samples(0, 3)) == 3
    assert len(buf) == 0
    assert buf.dropped == 3


def test_negative_capacity_is_refused():
    with pytest.raises(ValueError):
        buffer.SampleBuffer(-1, 'test')


def test_one_warning_per_overflow_episode(caplog):
    caplog.set_level(logging.INFO, logger=BUFFER_LOGGER)
    buf = buffer.SampleBuffer(3, 'pub-x')
    for start in range(0, 30, 3):
        buf.extend(_samples(start, start + 3))
    # 30 samples into 3 places: 27 dropped in nine overflowing calls, one line.
    assert buf.dropped == 27
    [start_line] = _warnings(caplog)
    assert 'pub-x' in start_line and 'dropped the 3 oldest' in start_line

    caplog.clear()
    buf.take(1)
    buf.delivered()
    [end_line] = _warnings(caplog)
    assert '27 samples were dropped' in end_line

    caplog.clear()
    buf.delivered()
    assert _warnings(caplog) == []
    buf.extend(_samples(30, 35))    # 2 left + 5 new in 3 places
    [next_start] = _warnings(caplog)
    assert 'dropped the 4 oldest' in next_start
    assert '31 dropped since start' in next_start


def test_concurrent_use_loses_and_duplicates_nothing():
    buf = buffer.SampleBuffer(500, 'test')
    producers, per_producer = 6, 2000
    taken: list[dict] = []
    done = threading.Event()

    def produce(p: int) -> None:
        for n in range(per_producer):
            buf.extend([{'p': p, 'n': n}])

    def consume() -> None:
        while not done.is_set() or len(buf):
            batch = buf.take(7)
            if len(batch) > 3:
                # Some batches "fail" and go back, as in a real outage.
                buf.put_back(batch[3:])
                batch = batch[:3]
            taken.extend(batch)

    threads = [threading.Thread(target=produce, args=(p,))
               for p in range(producers)]
    consumers = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads + consumers:
        thread.start()
    for thread in threads:
        thread.join(30)
    done.set()
    for thread in consumers:
        thread.join(30)

    seen = {(item['p'], item['n']) for item in taken}
    assert len(seen) == len(taken), 'a sample was handed out twice'
    assert len(taken) + buf.dropped == producers * per_producer


# -- BufferedPublisher -------------------------------------------------------

class Switchable(buffer.BufferedPublisher):
    """A destination (a list) that can be switched off, batch by batch."""

    def __init__(self, conf, batch_size=None, hold_off=0.0):
        super().__init__(conf, urllib.parse.urlsplit('switchable://'))
        self.batch_size = batch_size
        self.hold_off = hold_off
        self.received: list[dict] = []
        self.batches: list[int] = []
        self.attempts = 0
        self.down = False
        self.fail_at: set[int] = set()

    def _deliver(self, batch):
        self.attempts += 1
        if self.down or self.attempts in self.fail_at:
            raise OSError('destination is down')
        self.batches.append(len(batch))
        self.received.extend(batch)


@pytest.fixture
def conf(make_conf):
    return make_conf({'qga_polling': {'buffer_size': 100}})


def test_delivers_in_batches_in_order(conf):
    pub = Switchable(conf, batch_size=4)
    pub.publish(_samples(0, 10))
    assert pub.batches == [4, 4, 2]
    assert _numbers(pub.received) == list(range(10))
    assert (pub.published, pub.dropped, pub.buffered) == (10, 0, 0)


def test_outage_buffers_then_delivers_backlog_before_new(conf):
    pub = Switchable(conf, batch_size=4)
    pub.down = True
    pub.publish(_samples(0, 6))
    pub.publish(_samples(6, 9))
    assert pub.buffered == 9 and pub.received == []
    pub.down = False
    pub.publish(_samples(9, 12))
    assert _numbers(pub.received) == list(range(12))
    assert (pub.published, pub.dropped, pub.buffered) == (12, 0, 0)


def test_failed_batch_goes_back_to_the_front(conf):
    pub = Switchable(conf, batch_size=3)
    pub.fail_at = {2}
    pub.publish(_samples(0, 9))
    # First batch delivered, second failed: it and the third wait, in order.
    assert _numbers(pub.received) == [0, 1, 2]
    assert pub.buffered == 6
    assert pub.flush(5.0)
    assert _numbers(pub.received) == list(range(9))


def test_overflow_during_outage_drops_the_oldest(conf, make_conf, caplog):
    caplog.set_level(logging.WARNING, logger=BUFFER_LOGGER)
    pub = Switchable(make_conf({'qga_polling': {'buffer_size': 5}}),
                     batch_size=2)
    pub.down = True
    for start in range(0, 12, 3):
        pub.publish(_samples(start, start + 3))
    assert (pub.buffered, pub.dropped) == (5, 7)
    pub.down = False
    assert pub.flush(5.0)
    assert _numbers(pub.received) == [7, 8, 9, 10, 11]
    overflow = [w for w in _warnings(caplog) if 'buffer' in w]
    assert len(overflow) == 2
    assert '7 samples were dropped' in overflow[1]


def test_hold_off_only_buffers_until_flush(conf):
    pub = Switchable(conf, hold_off=3600.0)
    pub.down = True
    pub.publish(_samples(0, 2))
    assert pub.attempts == 1
    pub.down = False
    pub.publish(_samples(2, 4))
    assert pub.attempts == 1, 'publish() tried again while holding off'
    assert pub.buffered == 4
    assert pub.flush(5.0)
    assert _numbers(pub.received) == [0, 1, 2, 3]


def test_samples_that_are_not_json_are_refused_once(conf, caplog):
    pub = Switchable(conf)
    bad = [{'counter_name': 'nan', 'counter_volume': float('nan')},
           {'counter_name': 'obj', 'counter_volume': object()}]
    pub.publish(_samples(0, 2) + bad)
    assert _numbers(pub.received) == [0, 1]
    assert pub.dropped == 2
    assert sum('not encodable' in r.getMessage() for r in caplog.records) == 2


def test_unexpected_errors_do_not_escape(conf):
    class Broken(Switchable):
        def _deliver(self, batch):
            raise RuntimeError('bug in a plugin')

    pub = Broken(conf)
    pub.publish(_samples(0, 3))
    assert pub.buffered == 3
    assert not pub.flush(1.0)


def test_close_reports_what_is_lost(conf, caplog):
    pub = Switchable(conf)
    pub.down = True
    pub.publish(_samples(0, 3))
    pub.close()
    assert any('3 samples undelivered' in r.getMessage()
               for r in caplog.records)
