"""Motion gating: a frame (or a zone of it) is classified only when its picture changed.

Most of a day a camera looks at a scene where nothing moves; classifying it 30 times a second
heats the board for nothing. The gate decides on the frame itself, before it is decoded, so the
first frame after a change is classified at once (no frame of latency), and it decides cheaply:
on the picture's thumbnail (Picture.thumbnail: a JPEG read at libjpeg's 1/8 scale, an H.264
frame's luma scaled down by swscale, the picamera2 lores image shrunk), never the full frame.

What counts as a change (docs/CONFIGURATION.md, "Watching a still scene", has the figures that chose this):

* The reference is the region's thumbnail when it was last classified, not the previous
  frame: a slow change (a door opened a little at a time) adds up until it is seen.
* Sensor noise: a thumbnail pixel averages up to 8x8 pixels (noise std 3 becomes about 0.4),
  and a pixel counts as changed only past NOISE_FLOOR gray levels and RELATIVE of its brightness.
* Light that changes slowly (a cloud, dusk) changes the whole picture by about one factor: the
  reference is scaled by the ratio of the two mean brightnesses before it is compared.
* The region changed when more than `threshold` of its pixels did.

After a change the region is classified for HANGOVER more frames even if they are still (a new
label needs up to CONFIRM_FRAMES results in a row: filter.py), and at least every `max_still_s`
however still it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from edgecam.config import MotionConfig
from edgecam.core.frames import Frame, Picture
from edgecam.core.results import Result
from edgecam.core.stats import Stats
from edgecam.pipeline.filter import CONFIRM_FRAMES, ResultFilter


class Gated(Protocol):
    """What the gate reads and sets of a zone (pipeline.zones.Zone): its own gate, whether it is
    due, and whether its rectangle moved."""

    name: str
    filter: ResultFilter
    motion: MotionGate | None
    moved: bool

    def due(self, now: float) -> bool: ...

#: gray levels (0..255) a thumbnail pixel must change by, at least, to count as changed
NOISE_FLOOR = 12.0
#: ... and this part of its (expected) brightness: a bright pixel's noise and JPEG error are larger
RELATIVE = 0.12
#: frames still classified after a change stopped (the filter's confirmation of a new label)
HANGOVER = CONFIRM_FRAMES
_DARK = 4.0
_SATURATED = 250.0  # a reference darker than this on average is compared without the brightness ratio

WHOLE = (0.0, 0.0, 1.0, 1.0)


class MotionGate:
    """One region's gate (the whole frame, or a zone's rectangle): `changed(thumbnail, now)`."""

    def __init__(self, config: MotionConfig, crop: tuple[float, float, float, float] = WHOLE) -> None:
        self.threshold = config.threshold
        self.max_still_s = config.max_still_s
        self.crop = crop
        self._reference: np.ndarray | None = None
        self._classified_at = 0.0
        self._after = 0  # frames left to classify after a change
        #: the part of the region that changed, as last measured (0..1; for figures and tests)
        self.part = 0.0

    def changed(self, thumbnail: np.ndarray, now: float) -> bool:
        """Whether to classify the region now: it changed, just did, or was still for max_still_s.

        True means the caller classifies it: this picture becomes the reference.
        """
        region = region_of(thumbnail, self.crop).astype(np.float32)
        reference = self._reference
        if reference is None or reference.shape != region.shape:
            moved = True
        else:
            self.part = changed_part(reference, region)
            moved = self.part > self.threshold
        if moved:
            self._after = HANGOVER
        elif self._after > 0:
            self._after -= 1
        elif now - self._classified_at < self.max_still_s:
            return False
        self._reference, self._classified_at = region, now
        return True


def changed_part(reference: np.ndarray, picture: np.ndarray) -> float:
    """The part (0..1) of `picture`'s pixels that changed from `reference` (same shape, float32),
    after the reference is scaled to the picture's mean brightness."""
    lit = (reference < _SATURATED) & (picture < _SATURATED)  # clipped pixels say nothing of the gain
    mean = float(reference[lit].mean()) if lit.any() else 0.0
    gain = float(picture[lit].mean()) / mean if mean > _DARK else 1.0
    expected = np.minimum(reference * gain, 255.0)  # brighter light clips as the camera does
    tolerance = np.maximum(expected * RELATIVE, NOISE_FLOOR)
    return np.count_nonzero(np.abs(picture - expected) > tolerance) / picture.size


def region_of(thumbnail: np.ndarray, crop: tuple[float, float, float, float]) -> np.ndarray:
    """The rectangle `crop` (fractions, as zones.cut) of a thumbnail, at least one pixel."""
    height, width = thumbnail.shape[:2]
    x, y, w, h = crop
    left, top = min(width - 1, round(x * width)), min(height - 1, round(y * height))
    right, bottom = max(left + 1, round((x + w) * width)), max(top + 1, round((y + h) * height))
    return thumbnail[top:bottom, left:right]


def make_gate(config: MotionConfig, crop: tuple[float, float, float, float] = WHOLE
              ) -> MotionGate | None:
    """The gate `config` asks for, or None (motion gating off: every frame is classified)."""
    return MotionGate(config, crop) if config.enabled else None


def wanted(picture: Picture, now: float, gate: MotionGate | None, zones: Sequence[Gated]) -> bool:
    """Whether a frame is worth classifying, decided before it is decoded.

    Without zones, the frame's gate decides. With zones, each zone due asks its own gate and
    keeps the answer in `zone.moved` (the inference thread classifies only those): the frame
    is wanted if one of them moved. The thumbnail is made once, and only if a gate asks.
    """
    if not zones:
        return gate is None or gate.changed(picture.thumbnail(), now)
    thumbnail: np.ndarray | None = None
    wanted_any = False
    for zone in zones:
        if not zone.due(now):
            continue
        if zone.motion is None:
            zone.moved = True
        else:
            if thumbnail is None:
                thumbnail = picture.thumbnail()
            zone.moved = zone.motion.changed(thumbnail, now)
        wanted_any = wanted_any or zone.moved
    return wanted_any


def gate_frame(frame: Frame, now: float, gate: MotionGate | None, zones: Sequence[Gated],
               result_filter: ResultFilter, stats: Stats) -> tuple[bool, list[Result]]:
    """Whether the inference thread classifies `frame` (with zones: the zones whose `moved` is
    True), and the heartbeats of what is still (the frame's, or each still zone's) to send.

    A frame kept from the model is counted as dropped, reason `still`; a still zone of a
    frame counts in its zone's `still`. FrameFormatError if the picture is unusable.
    """
    if gate is None and not any(zone.motion is not None for zone in zones):
        return True, []
    moved = wanted(frame.picture, now, gate, zones)
    still: list[tuple[ResultFilter, str | None]] = [
        (zone.filter, zone.name) for zone in zones if zone.due(now) and not zone.moved]
    if not zones and not moved:
        still.append((result_filter, None))
    repeats = []
    for filter_, zone_name in still:
        if zone_name is not None:
            stats.count_zone(zone_name, "still")
        repeated = filter_.repeat(frame.seq, frame.captured_wall, frame.age_ms(now))
        if repeated is not None:
            stats.count("emitted")
            if zone_name is not None:
                stats.count_zone(zone_name, "emitted")
            repeats.append(repeated)
    if not moved:
        stats.drop("still")
    return moved, repeats
