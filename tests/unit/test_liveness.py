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

"""The liveness tracker: which state changes become events, and when.

Pure logic with a clock of the test's own (no time is waited for).
"""

from ceilometer_qga import liveness as lv


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def obs(instance_id, state, answered=None):
    return lv.Observation(instance_id, state,
                          answered=(state == 'ok') if answered is None
                          else answered, project_id='p', user_id='u')


def tracker(clock, damping=30.0, grace=120.0, known=None):
    return lv.LivenessTracker(damping, grace, known, clock)


def states(changes):
    return [(c.observation.instance_id, c.previous_state,
             c.observation.state) for c in changes]


def test_liveness_words():
    assert lv.liveness('ok') == lv.UP
    assert lv.liveness('frozen', answered=True) == lv.UP
    assert lv.liveness('over_budget', answered=True) == lv.UP
    for state in ('timeout', 'not_connected', 'protocol_error'):
        assert lv.liveness(state) == lv.DOWN
    for state in ('paused', 'shutdown', 'suspended', 'frozen', 'legacy',
                  'pending', 'crashed'):
        assert lv.liveness(state) == lv.UNKNOWN


def test_first_sweep_reports_every_state_once_then_only_changes():
    clock = Clock()
    t = tracker(clock)
    first = t.observe([obs('a', 'ok'), obs('b', 'timeout'),
                       obs('c', 'legacy')])
    assert states(first) == [('a', None, 'ok'), ('b', None, 'timeout'),
                             ('c', None, 'legacy')]
    assert first[1].payload('h')['previous_state'] == 'unknown'
    assert first[1].payload('h')['liveness'] == 'down'
    for _ in range(5):
        clock.now += 60
        assert t.observe([obs('a', 'ok'), obs('b', 'timeout'),
                          obs('c', 'legacy')]) == []
    clock.now += 60
    change, = t.observe([obs('a', 'not_connected'), obs('b', 'timeout')])
    payload = change.payload('compute-1')
    assert payload == {
        'instance_id': 'a', 'project_id': 'p', 'user_id': 'u',
        'host': 'compute-1', 'state': 'not_connected',
        'previous_state': 'ok', 'liveness': 'down',
        'previous_liveness': 'up', 'reason': None, 'agent_version': None,
        'channel': None}


def test_paused_is_a_change_but_never_down():
    clock = Clock()
    t = tracker(clock)
    t.observe([obs('a', 'ok')])
    clock.now += 60
    change, = t.observe([obs('a', 'paused')])
    assert change.payload('h')['liveness'] == 'unknown'
    assert change.payload('h')['previous_liveness'] == 'up'


def test_backoff_is_no_observation():
    clock = Clock()
    t = tracker(clock)
    t.observe([obs('a', 'timeout')])
    clock.now += 60
    assert t.observe([obs('a', 'backoff')]) == []
    clock.now += 60
    change, = t.observe([obs('a', 'ok')])
    assert change.previous_state == 'timeout'


def test_flapping_is_damped_to_one_event_per_interval():
    clock = Clock()
    t = tracker(clock, damping=30)
    t.observe([obs('a', 'ok')])
    clock.now += 100
    # the first change goes at once
    assert states(t.observe([obs('a', 'timeout')])) == [
        ('a', 'ok', 'timeout')]
    # flapping inside the interval: nothing
    for state in ('ok', 'timeout', 'ok', 'timeout'):
        clock.now += 5
        assert t.observe([obs('a', state)]) == []
    # still down when the interval is over: nothing new to say
    clock.now += 15
    assert t.observe([obs('a', 'timeout')]) == []
    # up again, twice inside the next interval: one event, when it ends
    clock.now += 1
    assert states(t.observe([obs('a', 'ok')])) == [('a', 'timeout', 'ok')]
    clock.now += 1
    assert t.observe([obs('a', 'timeout')]) == []
    clock.now += 1
    assert t.observe([obs('a', 'not_connected')]) == []
    clock.now += 30
    # the merged change comes out even in a round without the guest
    assert states(t.observe([])) == [('a', 'ok', 'not_connected')]


def test_back_in_the_sent_state_within_the_interval_sends_nothing():
    clock = Clock()
    t = tracker(clock, damping=30)
    t.observe([obs('a', 'ok')])
    clock.now += 100
    t.observe([obs('a', 'timeout')])
    clock.now += 5
    assert t.observe([obs('a', 'ok')]) == []
    clock.now += 5
    assert t.observe([obs('a', 'timeout')]) == []
    clock.now += 60
    assert t.observe([obs('a', 'timeout')]) == []


def test_new_guest_gets_a_grace_before_down():
    clock = Clock()
    t = tracker(clock, grace=120)
    t.observe([obs('a', 'ok')])
    # b boots while the poller runs: its agent is not there yet
    clock.now += 10
    assert t.observe([obs('a', 'ok'), obs('b', 'not_connected')]) == []
    clock.now += 60
    assert states(t.observe([obs('b', 'ok')])) == [('b', None, 'ok')]
    # c never gets an agent: down once the grace is over
    clock.now += 1
    assert t.observe([obs('c', 'not_connected')]) == []
    clock.now += 121
    assert states(t.observe([obs('c', 'not_connected')])) == [
        ('c', None, 'not_connected')]


def test_restart_with_state_file_sends_only_differences(tmp_path):
    path = str(tmp_path / 'states.json')
    clock = Clock()
    t = tracker(clock)
    t.observe([obs(str(i), 'ok') for i in range(100)]
              + [obs('down', 'timeout')])
    lv.save_states(path, t.sent_states())
    # the poller restarts: same states, no storm
    again = tracker(Clock(), known=lv.load_states(path))
    changes = again.observe([obs(str(i), 'ok') for i in range(99)]
                            + [obs('99', 'timeout'), obs('down', 'timeout')])
    assert states(changes) == [('99', 'ok', 'timeout')]


def test_damaged_state_file_costs_one_event_per_guest(tmp_path):
    path = tmp_path / 'states.json'
    path.write_text('{not json')
    assert lv.load_states(str(path)) == {}
    path.write_text('["a"]')
    assert lv.load_states(str(path)) == {}
    assert lv.load_states(str(tmp_path / 'absent')) == {}


def test_unseen_guests_are_forgotten():
    clock = Clock()
    t = tracker(clock)
    t.observe([obs('a', 'ok')])
    clock.now += lv.FORGET_AFTER + 1
    t.observe([])
    assert t.sent_states() == {}


def test_the_first_report_does_not_hold_back_the_first_change():
    """The state sent at start is no change: a guest that goes down right
    after it is reported at once, not a damping interval later.
    """
    clock = Clock()
    t = tracker(clock, damping=30)
    t.observe([obs('a', 'ok')])
    clock.now += 2
    assert states(t.observe([obs('a', 'timeout')])) == [
        ('a', 'ok', 'timeout')]
