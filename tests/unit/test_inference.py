"""The inference thread (edgecam/pipeline/inference.py): stale and bad frames, max_fps, the watchdog.

In process with real threads, the real slot, stats and output dispatcher; the
classifier is the real small model where labels matter, else a fake that
records what it was given. Time limits only bound a hang.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest
from fakes import Collect, FakeClassifier, FakeNotifier, frame
from harness import IMAGES, LABELS, MODELS, wait_for

from edgecam.config import OutputsConfig, PipelineConfig
from edgecam.core.frames import Frame
from edgecam.core.slot import FrameSlot
from edgecam.core.stats import Stats
from edgecam.daemon.notify import Watchdog
from edgecam.models.classifier import Classifier
from edgecam.models.preprocess import FrameFitter
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.inference import Inference
from edgecam.pipeline.work import InferenceSettings
from edgecam.sources.pictures import JpegPicture

SMALL_MODEL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
WAIT_S = 30.0


class TakeTimes(FrameSlot):
    """The real slot, noting when each frame was handed to inference."""

    def __init__(self, on_overwrite: Callable[[Frame], None]) -> None:
        super().__init__(on_overwrite)
        self.taken_at: list[float] = []

    def take(self, timeout: float, *, notify: bool = True) -> Frame | None:
        frame = super().take(timeout, notify=notify)
        if frame is not None:
            self.taken_at.append(time.monotonic())
        return frame


class Pipeline:
    """Slot → Inference → Dispatcher([Collect]) with the given classifier and settings."""

    def __init__(self, classifier, *, max_frame_age_ms: float = 60_000, max_fps: float = 0.0,
                 min_score: float = 0.0, emit: str = "every_frame", watchdog_s: float | None = 1e-6,
                 source_idle: Callable[[], bool] = lambda: False) -> None:
        self.classifier = classifier
        self.stats = Stats()
        self.slot = TakeTimes(lambda frame: self.stats.drop(frame.superseded_reason))
        self.collect = Collect()
        self.outputs = Dispatcher([self.collect], self.stats)
        self.notifier = FakeNotifier(watchdog_s)
        self.watchdog = Watchdog(self.notifier)  # type: ignore[arg-type]
        settings = InferenceSettings(classifier, PipelineConfig(max_frame_age_ms=max_frame_age_ms,
                                                                max_fps=max_fps),
                                     ResultFilter(OutputsConfig(emit=emit, min_score=min_score)))
        self.inference = Inference(settings, self.slot, self.stats, self.outputs.emit, self.watchdog.kick,
                                   source_idle)

    def start(self) -> Pipeline:
        self.outputs.start()
        self.inference.start()
        return self

    def put_taken(self, item: Frame) -> None:
        """Puts a frame and waits until inference took it (so none is overwritten)."""
        before = len(self.slot.taken_at)
        self.slot.put(item)
        wait_for(lambda: len(self.slot.taken_at) > before, WAIT_S, f"frame {item.seq} to be taken")

    def wait_handled(self, count: int) -> None:
        """Waits until `count` frames were classified or dropped."""
        def handled() -> int:
            return (self.stats.get("classified") + self.stats.get("dropped_stale")
                    + self.stats.get("dropped_bad_frame"))
        wait_for(lambda: handled() >= count, WAIT_S, f"{count} frames handled")


@pytest.fixture
def pipeline() -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(classifier=None, **kw) -> Pipeline:
        made.append(Pipeline(classifier or FakeClassifier(), **kw).start())
        return made[-1]

    yield make
    for each in made:  # both threads wait up to half a second for work: stop them side by side
        stopper = threading.Thread(target=each.inference.stop, args=(WAIT_S,), name="test-stopper")
        stopper.start()
        each.outputs.close(WAIT_S)
        stopper.join(WAIT_S)


@pytest.fixture(scope="module")
def small_classifier() -> Classifier:
    return Classifier(str(SMALL_MODEL), str(LABELS), threads=1)


def test_emitted_results_reach_the_outputs_with_the_frames_seq_and_time(pipeline, small_classifier) -> None:
    run = pipeline(small_classifier)
    parrot = cv2.imread(str(IMAGES / "parrot.jpg"))
    fit = FrameFitter(small_classifier.input_size, "crop")
    sent = [Frame.capture(seq, fit(parrot), (time.monotonic(), 1795838000.0 + seq)) for seq in (3, 5, 9)]
    for item in sent:
        run.put_taken(item)
    run.wait_handled(3)
    wait_for(lambda: len(run.collect.results) == 3, WAIT_S, "three results at the output")
    assert run.collect.seqs == [3, 5, 9]
    assert [r.ts for r in run.collect.results] == [1795838003.0, 1795838005.0, 1795838009.0]
    assert {r.top.label for r in run.collect.results} == {"macaw"}
    assert all(r.latency_ms >= r.inference_ms > 0 for r in run.collect.results)
    assert run.stats.get("classified") == run.stats.get("emitted") == 3
    assert run.inference.first_result.is_set() and run.inference.last_result is not None
    assert run.inference.last_result.seq == 9
    assert run.inference.error is None


def test_results_the_filter_holds_back_are_classified_but_not_emitted(pipeline) -> None:
    classifier = FakeClassifier(score=0.5)
    run = pipeline(classifier, min_score=0.9)
    for seq in (1, 2, 3):
        run.put_taken(frame(seq))
    run.wait_handled(3)
    assert classifier.calls == 3 and run.stats.get("classified") == 3
    run.outputs.close(WAIT_S)
    assert run.collect.results == [] and run.stats.get("emitted") == 0


def test_a_frame_older_than_max_frame_age_is_dropped_as_stale_never_classified(pipeline) -> None:
    classifier = FakeClassifier()
    run = pipeline(classifier, max_frame_age_ms=500)
    run.put_taken(frame(1, age_s=5.0))
    run.wait_handled(1)
    assert run.stats.get("dropped_stale") == 1
    assert classifier.calls == 0 and run.stats.get("classified") == 0
    run.put_taken(frame(2, age_s=0.0))  # a fresh one is classified
    run.wait_handled(2)
    assert classifier.calls == 1 and run.stats.get("dropped_stale") == 1
    wait_for(lambda: run.collect.seqs == [2], WAIT_S, "only the fresh frame's result")


def test_bad_frames_are_counted_and_the_thread_goes_on(pipeline, small_classifier) -> None:
    """A frame that cannot be decoded, or that is no image, is a bad_frame drop, not a crash."""
    run = pipeline(small_classifier)
    corrupt = JpegPicture(b"\xff\xd8 not really a JPEG", 1280, 720)
    run.put_taken(frame(1, picture=corrupt))
    run.put_taken(Frame.capture(2, np.zeros((0, 0, 3), np.uint8)))
    run.put_taken(Frame.capture(3, np.zeros((10, 10, 2), np.uint8)))
    run.wait_handled(3)
    assert run.stats.get("dropped_bad_frame") == 3
    run.put_taken(Frame.capture(4, np.zeros((128, 128, 3), np.uint8)))
    run.wait_handled(4)
    assert run.stats.get("classified") == 1
    assert run.inference.error is None
    wait_for(lambda: run.collect.seqs == [4], WAIT_S, "the good frame's result")


def test_max_fps_spaces_the_classifications(pipeline) -> None:
    """A source far faster than max_fps: frames are taken at most max_fps times a second, the
    frames in between are overwritten in the slot (counted)."""
    max_fps = 10.0
    classifier = FakeClassifier()
    run = pipeline(classifier, max_fps=max_fps)
    stop = threading.Event()

    def camera() -> None:
        seq = 0
        while not stop.wait(0.005):
            seq += 1
            run.slot.put(frame(seq))

    thread = threading.Thread(target=camera, name="test-camera", daemon=True)
    thread.start()
    try:
        wait_for(lambda: classifier.calls >= 6, WAIT_S, "six classifications")
    finally:
        stop.set()
        thread.join(WAIT_S)
    gaps = np.diff(run.slot.taken_at)
    assert gaps.min() >= 1 / max_fps, gaps
    assert run.stats.get("dropped_overwritten") > 0


def test_the_watchdog_is_kicked_by_results_only_once_armed(pipeline) -> None:
    run = pipeline()
    run.put_taken(frame(1))
    wait_for(lambda: run.collect.seqs == [1], WAIT_S, "the first result (its kick is done)")
    assert run.notifier.count("WATCHDOG=1") == 0, "no ping before arm() (READY comes first)"
    run.watchdog.arm()
    for seq in (2, 3, 4):
        run.put_taken(frame(seq))
    wait_for(lambda: run.collect.seqs == [1, 2, 3, 4], WAIT_S, "the other results")
    assert run.notifier.count("WATCHDOG=1") == 3, "one ping per result (the period is tiny)"


def test_without_frames_the_watchdog_is_kicked_only_while_the_source_is_being_handled(pipeline) -> None:
    """No frame: inference pings only if the capture thread is visibly reopening the source;
    a stuck camera that nobody handles stops the pings, so systemd restarts the service."""
    idle = threading.Event()
    run = pipeline(source_idle=idle.is_set)
    run.watchdog.arm()
    threading.Event().wait(1.5)  # three of inference's half-second waits for a frame
    assert run.notifier.count("WATCHDOG=1") == 0
    idle.set()
    wait_for(lambda: run.notifier.count("WATCHDOG=1") >= 2, WAIT_S, "pings while the source is reopened")


def test_a_classifier_that_fails_ends_the_thread_with_its_error(pipeline) -> None:
    class Broken(FakeClassifier):
        def infer(self, image: np.ndarray, before_invoke=None):
            raise RuntimeError("interpreter died")

    run = pipeline(Broken())
    run.slot.put(frame(1))
    wait_for(lambda: run.inference.error is not None, WAIT_S, "the error")
    assert isinstance(run.inference.error, RuntimeError)
    assert run.stats.get("classified") == 0 and run.collect.results == []


class FasterCamera(FakeClassifier):
    """A fake whose every run ends with the next of `frames` in the slot: a camera faster than
    the model, without timing. It notes on which thread each frame's labels are ranked, and can
    make that ranking slow (or fail) to hold the finisher busy."""

    def __init__(self, frames: list[Frame], rank_s: float = 0.0, fail: bool = False) -> None:
        super().__init__()
        self.slot: FrameSlot | None = None
        self._frames = list(frames)
        self._rank_s = rank_s
        self._fail = fail
        self.ranked_on: list[str] = []

    def infer(self, image: np.ndarray, before_invoke=None):
        labels = super().infer(image, before_invoke)
        if self._frames:
            assert self.slot is not None
            self.slot.put(self._frames.pop(0))

        def rank():
            self.ranked_on.append(threading.current_thread().name)
            if self._fail:
                raise RuntimeError("ranking failed")
            time.sleep(self._rank_s)
            return labels()

        return rank


def faster_camera(pipeline, count: int, **kw) -> tuple[Pipeline, FasterCamera]:
    frames = [frame(seq) for seq in range(1, count + 1)]
    classifier = FasterCamera(frames[1:], **kw)
    run = pipeline(classifier)
    classifier.slot = run.slot
    run.slot.put(frames[0])
    return run, classifier


def test_with_the_next_frame_waiting_a_frame_is_finished_by_the_finisher_in_order(pipeline) -> None:
    """The model is the bottleneck: each frame's labels, result and sending are left to the
    finisher (beside the next invoke); results still reach the outputs in order, and the
    counters add up."""
    run, classifier = faster_camera(pipeline, 20)
    wait_for(lambda: len(run.collect.results) == 20, WAIT_S, "twenty results at the output")
    assert run.collect.seqs == list(range(1, 21))
    # Every frame but the last had the next one waiting; the last may go there too (busy).
    assert classifier.ranked_on[:19] == ["edgecam-finish"] * 19
    assert run.stats.get("classified") == run.stats.get("emitted") == 20
    assert run.stats.get("dropped_overwritten") == 0
    assert run.inference.last_result is not None and run.inference.last_result.seq == 20
    assert run.inference.error is None


def test_with_a_camera_slower_than_the_model_frames_are_finished_inline(pipeline) -> None:
    """No frame waiting when invoke() returns: the inference thread finishes each frame itself
    and the finisher is never woken (no wake-up per frame at 20 fps)."""
    classifier = FasterCamera([])
    run = pipeline(classifier)
    for seq in (1, 2, 3, 4):
        run.put_taken(frame(seq))
        run.wait_handled(seq)
    wait_for(lambda: len(run.collect.results) == 4, WAIT_S, "four results at the output")
    assert classifier.ranked_on == ["edgecam-inference"] * 4
    assert run.collect.seqs == [1, 2, 3, 4]


def test_stopping_runs_what_the_finisher_was_left_so_no_result_is_lost(pipeline) -> None:
    """A finisher kept busy (each ranking takes 50 ms) has a backlog when inference stops:
    the stop runs it, and every frame taken is classified and reaches the outputs."""
    run, _ = faster_camera(pipeline, 10, rank_s=0.05)
    wait_for(lambda: run.stats.get("classified") >= 2, WAIT_S, "two frames finished")
    run.inference.stop(WAIT_S)
    run.outputs.close(WAIT_S)
    taken = len(run.slot.taken_at)
    assert run.stats.get("classified") == run.stats.get("emitted") == taken
    assert run.collect.seqs == list(range(1, taken + 1))


def test_a_finish_that_fails_ends_inference_with_its_error(pipeline) -> None:
    run, _ = faster_camera(pipeline, 5, fail=True)
    wait_for(lambda: run.inference.error is not None, WAIT_S, "the error")
    assert isinstance(run.inference.error, RuntimeError)
    wait_for(lambda: not run.inference._worker.is_alive(), WAIT_S, "the inference thread to end")


def test_an_idle_finisher_keeps_no_frame_alive(pipeline) -> None:
    """A frame's picture may hold a stream's decoder (and its threads): once finished, no
    frame may be kept by an idle finisher, or a reconnect would leave the old decoder alive
    (the soak saw two more threads and 2 MB more after each restart)."""
    frames = [frame(seq) for seq in (1, 2, 3)]
    pictures = [weakref.ref(item.picture) for item in frames]
    classifier = FasterCamera(frames[1:])
    run = pipeline(classifier)
    classifier.slot = run.slot
    run.slot.put(frames[0])
    del frames
    wait_for(lambda: len(run.collect.results) == 3, WAIT_S, "three results at the output")
    assert "edgecam-finish" in classifier.ranked_on
    wait_for(lambda: not run.inference._finisher.busy, WAIT_S, "the finisher to be idle")
    gc.collect()
    assert [ref() for ref in pictures] == [None, None, None]
