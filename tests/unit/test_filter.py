"""The result filter: min_score, on_change with hysteresis, heartbeat, every_frame."""

from __future__ import annotations

from edgecam.config import OutputsConfig
from edgecam.core.results import Classification, Label, Result
from edgecam.pipeline.filter import CONFIRM_FRAMES, ResultFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(*scored: tuple[int, float], seq: int = 1) -> Result:
    labels = tuple(Label(index, f"label{index}", score) for index, score in scored)
    return Result(seq, 0.0, 10.0, 5.0, Classification(labels, 5.0))


def make(clock: Clock | None = None, **overrides) -> ResultFilter:
    return ResultFilter(OutputsConfig(**overrides), clock or Clock())


def test_every_frame_emits_what_clears_min_score() -> None:
    f = make(emit="every_frame", min_score=0.5)
    assert f.offer(result((1, 0.6), (2, 0.1)))
    assert f.offer(result((1, 0.6), (2, 0.1)))
    assert not f.offer(result((1, 0.4), (2, 0.3)))


def test_a_decisive_change_is_emitted_at_once_and_repeats_are_not() -> None:
    f = make()
    assert f.offer(result((1, 0.9), (2, 0.05)))
    assert not f.offer(result((1, 0.9), (2, 0.05)))
    assert f.offer(result((2, 0.8), (1, 0.1)))


def test_two_similar_labels_alternating_every_frame_never_flap() -> None:
    """Neither leads decisively nor stays on top: after the first, nothing is emitted."""
    clock = Clock()
    f = make(clock, heartbeat_s=0)
    emitted = sum(f.offer(result((1, 0.45), (2, 0.40)) if i % 2 else result((2, 0.46), (1, 0.41)))
                  is not None for i in range(1000))
    assert emitted == 0


def test_a_label_that_stays_on_top_takes_over_after_confirm_frames() -> None:
    f = make()
    assert f.offer(result((1, 0.9), (2, 0.05)))
    close = result((2, 0.5), (1, 0.4))
    outcomes = [f.offer(close) is not None for _ in range(CONFIRM_FRAMES)]
    assert outcomes == [False] * (CONFIRM_FRAMES - 1) + [True]
    assert f.current == 2


def test_below_min_score_is_never_emitted_and_resets_the_streak() -> None:
    f = make(min_score=0.3)
    assert not f.offer(result((1, 0.2), (2, 0.1)))
    close = result((2, 0.5), (1, 0.4))
    assert not f.offer(close)
    assert not f.offer(result((3, 0.1), (2, 0.05)))
    assert not f.offer(close)
    assert not f.offer(close)
    assert f.offer(close)


def test_heartbeat_repeats_the_current_label() -> None:
    clock = Clock()
    f = make(clock, heartbeat_s=10)
    steady = result((1, 0.9), (2, 0.05))
    assert f.offer(steady)
    clock.now += 9.9
    assert not f.offer(steady)
    clock.now += 0.2
    assert f.offer(steady)
    assert not f.offer(steady)


def test_heartbeat_zero_means_never() -> None:
    clock = Clock()
    f = make(clock, heartbeat_s=0)
    steady = result((1, 0.9), (2, 0.05))
    assert f.offer(steady)
    clock.now += 1e6
    assert not f.offer(steady)


def test_deny_takes_a_label_out_and_the_next_one_leads() -> None:
    f = make(emit="every_frame", labels_deny=("label1",))
    emitted = f.offer(result((1, 0.6), (2, 0.35), (3, 0.05)))
    assert emitted is not None
    assert [label.index for label in emitted.classification.labels] == [2, 3]
    assert f.offer(result((1, 0.9))) is None, "nothing left but the denied label"


def test_allow_keeps_only_its_labels() -> None:
    f = make(emit="every_frame", labels_allow=("label3",))
    emitted = f.offer(result((1, 0.5), (3, 0.4), (2, 0.1)))
    assert emitted is not None and [label.index for label in emitted.classification.labels] == [3]
    assert f.offer(result((1, 0.5), (2, 0.4))) is None


def test_allow_and_deny_on_change() -> None:
    """A denied top label does not count as a change: the allowed scene stays current."""
    f = make(labels_allow=("label1", "label2"), labels_deny=("label2",))
    assert f.offer(result((1, 0.9), (3, 0.05))) is not None
    assert f.offer(result((2, 0.9), (3, 0.05))) is None
    assert f.offer(result((3, 0.9), (1, 0.05))) is None, "label3 is not allowed; label1 is 0.05"
    assert f.current == 1


def test_a_threshold_replaces_min_score_for_its_label() -> None:
    f = make(emit="every_frame", min_score=0.3, thresholds={"label1": 0.8, "label2": 0.1})
    assert f.offer(result((1, 0.7), (2, 0.2))) is None, "label1 needs 0.8"
    assert f.offer(result((1, 0.85), (2, 0.1))) is not None
    assert f.offer(result((2, 0.2), (1, 0.1))) is not None, "label2 needs only 0.1"
    assert f.offer(result((3, 0.2), (1, 0.1))) is None, "label3 keeps min_score 0.3"


def test_without_rules_the_result_is_passed_as_it_is() -> None:
    f = make(emit="every_frame")
    offered = result((1, 0.6), (2, 0.1))
    assert f.offer(offered) is offered


def test_changed_tells_a_label_change_from_a_heartbeat() -> None:
    """Only changes get a snapshot of their frame."""
    clock = Clock()
    f = make(clock, heartbeat_s=10)
    assert f.offer(result((1, 0.9), (2, 0.05))) and f.changed
    clock.now += 11
    assert f.offer(result((1, 0.9), (2, 0.05))) and not f.changed  # the heartbeat
    assert not f.offer(result((2, 0.5), (1, 0.4))) and not f.changed  # not yet confirmed
    assert f.offer(result((2, 0.9), (1, 0.05))) and f.changed


def test_with_every_frame_a_change_is_a_new_top_label() -> None:
    f = make(emit="every_frame", min_score=0.5)
    changes = [f.offer(r) is not None and f.changed for r in (
        result((1, 0.6)), result((1, 0.7)), result((1, 0.2)), result((1, 0.6)), result((2, 0.6)))]
    assert changes == [True, False, False, False, True]
