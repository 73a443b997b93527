"""Motion gating (edgecam/pipeline/motion.py): noise and slow light are not motion, a change is.

The pictures are the real test photos, at 720p as a camera streams them, with sensor noise
(std 3) and JPEG-encoded, so the gate sees what it sees in the daemon (a JPEG's 1/8-scale
thumbnail). Time is injected: the dusk test plays a minute in well under a second.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest
from fakes import Collect, FakeClassifier, FakeNotifier
from harness import IMAGES, wait_for

from edgecam.config import MotionConfig, OutputsConfig, PipelineConfig
from edgecam.core.frames import Decoded, Frame, FrameFormatError
from edgecam.core.results import Classification, Label, Result
from edgecam.core.slot import FrameSlot
from edgecam.core.stats import Stats
from edgecam.daemon.notify import Watchdog
from edgecam.models.preprocess import FrameFitter
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.pipeline.filter import CONFIRM_FRAMES, ResultFilter
from edgecam.pipeline.inference import Inference
from edgecam.pipeline.motion import HANGOVER, MotionGate, changed_part
from edgecam.pipeline.work import InferenceSettings
from edgecam.pipeline.zones import Zone
from edgecam.sources.pictures import JpegPicture

WIDTH, HEIGHT = 1280, 720
WAIT_S = 30.0


def photo(name: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    return cv2.resize(cv2.imread(str(IMAGES / name)), size, interpolation=cv2.INTER_AREA)


def camera(image: np.ndarray, rng: np.random.Generator, gain: float = 1.0, std: float = 3.0
           ) -> JpegPicture:
    """`image` as a camera streams it: light times `gain`, sensor noise, JPEG."""
    noisy = image.astype(np.float32) * gain + rng.normal(0, std, image.shape).astype(np.float32)
    ok, data = cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    height, width = image.shape[:2]
    return JpegPicture(data.tobytes(), width, height)


def gate(threshold: float = 0.02, max_still_s: float = 30.0) -> MotionGate:
    return MotionGate(MotionConfig(enabled=True, threshold=threshold, max_still_s=max_still_s))


def test_thumbnails_are_small_and_gray() -> None:
    rng = np.random.default_rng(0)
    assert camera(photo("cat.bmp"), rng).thumbnail().shape == (HEIGHT // 8, WIDTH // 8)
    assert camera(photo("cat.bmp", (64, 48)), rng).thumbnail().shape == (48, 64)  # too small to shrink
    assert Decoded(photo("cat.bmp", (224, 224))).thumbnail().shape == (74, 74)
    assert Decoded(np.zeros((480, 640), np.uint8)).thumbnail().shape == (60, 80)
    with pytest.raises(FrameFormatError):
        JpegPicture(b"\xff\xd8 not really", WIDTH, HEIGHT).thumbnail()
    with pytest.raises(FrameFormatError):
        Decoded(np.zeros((0, 0, 3), np.uint8)).thumbnail()


@pytest.mark.parametrize("name", ["cat.bmp", "grace_hopper.bmp", "parrot.jpg"])
def test_sensor_noise_is_not_motion(name: str) -> None:
    rng = np.random.default_rng(1)
    image = photo(name)
    still = gate()
    assert still.changed(camera(image, rng).thumbnail(), 0.0)  # the first frame is classified
    fired = sum(still.changed(camera(image, rng).thumbnail(), 0.1 * i) for i in range(1, 60))
    assert fired == HANGOVER  # only the frames after the first, as after any change


@pytest.mark.parametrize("name", ["cat.bmp", "parrot.jpg"])
def test_dusk_classifies_once_per_max_still_s(name: str) -> None:
    """Light falling by 30 % over a minute, then rising back over another: no motion is seen, only
    max_still_s's classifications (and the few frames after the first)."""
    rng = np.random.default_rng(2)
    image = photo(name, (640, 360))
    max_still_s, fps, minute = 15.0, 5, 60.0
    dusk = gate(max_still_s=max_still_s)
    times = np.arange(0, 2 * minute, 1 / fps)
    fired = []
    for now in times:
        gain = 1 - 0.3 * (now / minute if now < minute else 2 - now / minute)
        if dusk.changed(camera(image, rng, gain).thumbnail(), float(now)):
            fired.append(float(now))
    after_first = fired[1 + HANGOVER:]
    assert len(after_first) <= math.ceil(times[-1] / max_still_s), fired
    assert all(b - a >= max_still_s - 1e-9 for a, b in itertools.pairwise(after_first)), fired


def test_a_scene_change_is_seen_at_once_and_for_a_new_labels_confirmation() -> None:
    rng = np.random.default_rng(3)
    cat, parrot = photo("cat.bmp"), photo("parrot.jpg")
    watching = gate()
    for i in range(1 + HANGOVER):
        assert watching.changed(camera(cat, rng).thumbnail(), i)
    assert not watching.changed(camera(cat, rng).thumbnail(), 5)
    assert watching.changed(camera(parrot, rng).thumbnail(), 6)  # the very frame of the change
    assert watching.part > 0.5
    assert HANGOVER >= CONFIRM_FRAMES - 1  # a new label without a decisive lead is still confirmed
    assert all(watching.changed(camera(parrot, rng).thumbnail(), 7) for _ in range(HANGOVER))
    assert not watching.changed(camera(parrot, rng).thumbnail(), 8)


def test_a_small_object_and_a_slow_change_are_seen() -> None:
    """A patch of 4 % of the frame is seen at once; one that grows by 0.5 % a frame (a door opened
    slowly) is seen once it adds up, since the reference is the last classified picture."""
    rng = np.random.default_rng(4)
    cat, hopper = photo("cat.bmp"), photo("grace_hopper.bmp")
    watching = gate()
    for i in range(1 + HANGOVER):
        watching.changed(camera(cat, rng).thumbnail(), i)
    patch = cat.copy()
    patch[200:200 + 192, 500:500 + 192] = hopper[200:200 + 192, 500:500 + 192]  # 4 % of 1280x720
    assert watching.changed(camera(patch, rng).thumbnail(), 10)
    slow, seen_at = gate(), None
    for i in range(1 + HANGOVER):
        slow.changed(camera(cat, rng).thumbnail(), i)
    for step in range(1, 40):
        opened = cat.copy()
        width = round(WIDTH * 0.005 * step)
        opened[:, :width] = hopper[:, :width]
        if slow.changed(camera(opened, rng).thumbnail(), 10 + step):
            seen_at = step
            break
    assert seen_at is not None and seen_at <= 8, seen_at


def test_changed_part_ignores_global_light_and_clipping() -> None:
    reference = np.linspace(20, 230, 160 * 90, dtype=np.float32).reshape(90, 160)
    assert changed_part(reference, reference * 0.7) == 0
    assert changed_part(reference, np.minimum(reference * 1.3, 255)) < 0.005
    assert changed_part(np.zeros((9, 16), np.float32), np.zeros((9, 16), np.float32)) == 0
    moved = reference.copy()
    moved[:, :16] = 255 - moved[:, :16]
    assert changed_part(reference, moved) == pytest.approx(0.1, abs=0.02)


def test_heartbeat_of_a_still_scene_repeats_the_last_label_marked_still() -> None:
    now = [0.0]
    result_filter = ResultFilter(OutputsConfig(emit="on_change", heartbeat_s=10), clock=lambda: now[0])
    assert result_filter.repeat(1, 100.0, 5.0) is None  # nothing emitted yet
    first = Result(1, 100.0, 40.0, 30.0, Classification((Label(3, "cat", 0.9), Label(4, "dog", 0.1)), 30))
    assert result_filter.offer(first) is first
    assert result_filter.repeat(2, 100.1, 5.0) is None  # not due
    now[0] = 10.0
    repeated = result_filter.repeat(300, 110.0, 2.0)
    assert repeated is not None and repeated.still and not result_filter.changed
    assert (repeated.seq, repeated.ts, repeated.top.label, repeated.inference_ms) == (300, 110.0, "cat", 0.0)
    assert repeated.message()["still"] is True and "still" not in first.message()
    assert repeated.journal_fields()["EDGECAM_STILL"] == "1" and "(still)" in repeated.text()
    assert result_filter.repeat(301, 110.1, 2.0) is None
    every = ResultFilter(OutputsConfig(emit="every_frame"))
    every.offer(first)
    assert every.repeat(2, 101.0, 1.0) is None


# -- in the inference thread: the frame's gate, and each zone's own ----------------------------


class Thread:
    """Slot → Inference (motion gated) → Collect, frames put one at a time and waited for."""

    def __init__(self, settings: InferenceSettings) -> None:
        self.stats = Stats()
        self.slot = FrameSlot(lambda frame: self.stats.drop(frame.superseded_reason))
        self.collect = Collect()
        self.outputs = Dispatcher([self.collect], self.stats)
        self.inference = Inference(settings, self.slot, self.stats, self.outputs.emit,
                                   Watchdog(FakeNotifier()).kick, lambda: False)  # type: ignore[arg-type]
        self.seq = 0

    def __enter__(self) -> Thread:
        self.outputs.start()
        self.inference.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inference.stop(2.0)
        self.outputs.close(2.0)

    def show(self, image: np.ndarray) -> None:
        """One frame, handled (classified or dropped as still) before this returns."""
        self.seq += 1
        done = self.stats.get("classified") + self.stats.get("dropped_still") + self.stats.get(
            "dropped_bad_frame")
        self.slot.put(Frame.capture(self.seq, Decoded(image)))
        wait_for(lambda: self.stats.get("classified") + self.stats.get("dropped_still")
                 + self.stats.get("dropped_bad_frame") > done, WAIT_S, f"frame {self.seq} handled")


def test_a_still_frame_is_not_classified_and_counted_still() -> None:
    classifier = FakeClassifier(score=0.9)
    motion = MotionConfig(enabled=True, max_still_s=3600)
    settings = InferenceSettings(classifier, PipelineConfig(max_frame_age_ms=60_000, motion=motion),
                                 ResultFilter(OutputsConfig(emit="every_frame")), motion=MotionGate(motion))
    cat, parrot = photo("cat.bmp", (640, 360)), photo("parrot.jpg", (640, 360))
    with Thread(settings) as thread:
        for _ in range(10):
            thread.show(cat)
        assert classifier.calls == 1 + HANGOVER
        thread.show(parrot)
        assert classifier.calls == 2 + HANGOVER  # at once, on the frame of the change
        for _ in range(5):
            thread.show(parrot)
        assert classifier.calls == 2 + 2 * HANGOVER
        assert thread.stats.get("dropped_still") == 16 - classifier.calls
        assert thread.stats.figures()["frames"]["dropped_by_reason"]["still"] == 16 - classifier.calls


def zone(name: str, crop: tuple[float, float, float, float], classifier: FakeClassifier) -> Zone:
    outputs = OutputsConfig(emit="every_frame", min_score=0.0)
    return Zone(name, crop, 0.0, classifier, ResultFilter(outputs), FrameFitter((8, 8), "stretch"), outputs,
                motion=MotionGate(MotionConfig(enabled=True, max_still_s=3600), crop))


def test_motion_in_one_zone_classifies_that_zone_only() -> None:
    left, right = FakeClassifier("left"), FakeClassifier("right")
    zones = (zone("left", (0.0, 0.0, 0.5, 1.0), left), zone("right", (0.5, 0.0, 0.5, 1.0), right))
    settings = InferenceSettings(left, PipelineConfig(max_frame_age_ms=60_000),
                                 ResultFilter(OutputsConfig()), zones)
    cat, hopper = photo("cat.bmp", (320, 320)), photo("grace_hopper.bmp", (320, 320))
    with Thread(settings) as thread:
        thread.stats.set_zones(("left", "right"))
        for _ in range(6):
            thread.show(np.hstack([cat, cat]))
        assert (left.calls, right.calls) == (1 + HANGOVER, 1 + HANGOVER)
        for _ in range(6):
            thread.show(np.hstack([cat, hopper]))  # only the right half changes
        assert (left.calls, right.calls) == (1 + HANGOVER, 2 + 2 * HANGOVER)
        zones_counts = thread.stats.zone_counts()
        assert zones_counts["left"]["still"] == 12 - left.calls
        assert zones_counts["right"]["still"] == 12 - right.calls
        wait_for(lambda: len(thread.collect.results) == left.calls + right.calls, WAIT_S, "results")
        assert {r.zone for r in thread.collect.results[-(1 + HANGOVER):]} == {"right"}


def test_an_unreadable_thumbnail_is_a_bad_frame() -> None:
    motion = MotionConfig(enabled=True)
    settings = InferenceSettings(FakeClassifier(), PipelineConfig(max_frame_age_ms=60_000, motion=motion),
                                 ResultFilter(OutputsConfig()), motion=MotionGate(motion))
    with Thread(settings) as thread:
        thread.slot.put(Frame.capture(1, JpegPicture(b"\xff\xd8 not really", WIDTH, HEIGHT)))
        wait_for(lambda: thread.stats.get("dropped_bad_frame") == 1, WAIT_S, "the bad frame counted")
        thread.show(photo("cat.bmp", (64, 64)))  # and it goes on
        assert thread.stats.get("classified") == 1
