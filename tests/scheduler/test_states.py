from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smsgw.scheduler.states import (
    FINAL,
    PENDING,
    TRANSITIONS,
    Event,
    IllegalTransition,
    State,
    message_state,
    transition,
)

events = st.lists(st.sampled_from(list(Event)), max_size=30)


@given(st.lists(events, min_size=1, max_size=4))
def test_any_event_sequence_leaves_legal_states(histories: list[list[Event]]) -> None:
    segments = []
    for history in histories:
        state = State.ACCEPTED
        for event in history:
            try:
                new = transition(state, event)
            except IllegalTransition as exc:
                assert (state, event) not in TRANSITIONS and exc.state is state
                continue
            assert state not in FINAL, "a final state never changes"
            if event is Event.CANCEL:
                assert state in PENDING, "cancel only before hand-off"
            state = new
        segments.append(state)
    derived = message_state(segments)
    assert (derived in FINAL) == all(s in FINAL for s in segments)
    if derived is State.DELIVERED:
        assert set(segments) == {State.DELIVERED}
    if all(s in FINAL for s in segments) and set(segments) != {State.DELIVERED}:
        assert derived in FINAL - {State.DELIVERED} and derived in segments


def test_every_state_is_reachable_from_accepted() -> None:
    reached = {State.ACCEPTED}
    frontier = [State.ACCEPTED]
    while frontier:
        state = frontier.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(State)
