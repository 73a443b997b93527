"""The preview: the newest classified frame, at web.preview_width, zones drawn, as a JPEG.

Everything here runs on the web thread, and only when a viewer asks: the
inference thread just leaves its frame in core.latest. `Preview.jpeg`
encodes at most `preview_fps` times a second whatever the number of viewers
and requests (they share the last JPEG), and only a frame newer than the
last one encoded (or with other zone labels to draw).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgecam.core.latest import LatestFrame
from edgecam.core.stats import Stats

QUALITY = 80
#: the zones' colour (BGR): a yellow that stands out of most scenes; the browser test looks for it
ZONE_BGR = (0, 255, 255)
_TEXT_BGR = (0, 0, 0)


@dataclass(frozen=True)
class Overlay:
    """A zone drawn over the preview: its rectangle and what it is labelled now."""

    name: str
    crop: tuple[float, float, float, float]
    text: str  # "door: cat 0.91", or the name alone before its first result


@dataclass(frozen=True)
class Encoded:
    seq: int
    ts: float  # the frame's capture time
    jpeg: bytes


def render(image: np.ndarray, width: int, overlays: Sequence[Overlay]) -> np.ndarray:
    """`image` (BGR, gray or BGRA) scaled to `width` (a new array: the pipeline's frame is never
    drawn on), the zones drawn."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    height, own_width = image.shape[:2]
    size = (width, max(1, round(height * width / own_width)))
    shrink = width < own_width
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    thick = max(2, width // 320)
    for overlay in overlays:
        left, top, right, bottom = box(overlay.crop, size)
        cv2.rectangle(scaled, (left, top), (right - 1, bottom - 1), ZONE_BGR, thick)
        scale = max(0.4, width / 900)
        (text_w, text_h), base = cv2.getTextSize(overlay.text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = min(max(top, 0) + thick, size[1] - text_h - base - 2 * thick)
        cv2.rectangle(scaled, (left, y), (min(size[0] - 1, left + text_w + 2 * thick),
                                          y + text_h + base + thick), ZONE_BGR, -1)
        cv2.putText(scaled, overlay.text, (left + thick, y + text_h + thick // 2),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT_BGR, 1, cv2.LINE_AA)
    return scaled


def box(crop: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A zone's rectangle in an image of `size`: (left, top, right, bottom), rounded as
    pipeline.zones.cut rounds the pixels it classifies."""
    width, height = size
    x, y, w, h = crop
    left, top = round(x * width), round(y * height)
    return left, top, max(left + 1, round((x + w) * width)), max(top + 1, round((y + h) * height))


class Preview:
    """The shared preview encoder (the web thread only: no lock)."""

    def __init__(self, latest: LatestFrame, stats: Stats) -> None:
        self._latest = latest
        self._stats = stats
        self._last: Encoded | None = None
        self._drawn: tuple[Overlay, ...] = ()
        self._encoded_at = float("-inf")

    def newer_than(self, encoded: Encoded | None) -> bool:
        """Whether a frame newer than `encoded` was classified (one a viewer may miss)."""
        frame = self._latest.get()
        return frame is not None and (encoded is None or frame.seq != encoded.seq)

    def jpeg(self, now: float, fps: float, width: int, overlays: Sequence[Overlay]) -> Encoded | None:
        """The newest frame's JPEG; the last one again if it is less than 1/fps old or nothing
        changed since; None before the first classified frame."""
        last = self._last
        if last is not None and now - self._encoded_at < 1.0 / fps:
            return last
        frame = self._latest.get()
        if frame is None:
            return last
        overlays = tuple(overlays)
        if last is not None and frame.seq == last.seq and overlays == self._drawn:
            return last
        ok, data = cv2.imencode(".jpg", render(frame.image, width, overlays),
                                [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        if not ok:
            return last
        self._stats.count("web_preview_encoded")
        encoded = self._last = Encoded(frame.seq, frame.ts, data.tobytes())
        self._drawn, self._encoded_at = overlays, now
        return encoded
