"""Still images: one file or a folder of them, cycled at `camera.fps` (demos and tests).

The photos are decoded once at open, and each is fitted to the model's input size
the first time the model takes it (`StillPicture`): a photo shown again and again is
not cropped and resized again for every frame (1-1.5 ms for a 512-pixel photo, as much
as a fifth of a 6.5 ms inference).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from edgecam.common.files import MAX_IMAGE_BYTES, user_file_problem
from edgecam.core.frames import Fitter, Picture, gray_thumbnail
from edgecam.errors import SourceError
from edgecam.sources.base import Pacer, Source

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})


class StillPicture(Picture):
    """A decoded photo, fitted once per fitter and then reused for every frame that shows it."""

    # Decoded at open: a frame of it overwritten in the slot wasted no decoding.
    superseded_reason = "overwritten"
    instant = True  # fitted once per fitter, then reused (the first fit is 1-1.5 ms)

    def __init__(self, image: np.ndarray) -> None:
        image.flags.writeable = False
        self.image = image
        self._fitted: tuple[Fitter, np.ndarray] | None = None
        self._thumbnail: np.ndarray | None = None  # the photo never changes: made once

    def decode(self, fit: Fitter) -> np.ndarray:
        fitted = self._fitted  # one read: a tuple swapped whole, never mutated
        if fitted is not None and fitted[0] is fit:
            return fitted[1]
        image = fit(self.image)
        if isinstance(image, np.ndarray):
            image.flags.writeable = False
        self._fitted = (fit, image)
        return image

    def thumbnail(self) -> np.ndarray:
        if self._thumbnail is None:
            self._thumbnail = gray_thumbnail(self.image)
        return self._thumbnail


class ImageSource(Source):
    """Decodes the images once at open, then hands out the same read-only pictures in turn."""

    def __init__(self, path: str, fps: float, realtime: bool) -> None:
        self.name = path
        self._fps = fps if realtime else 0.0
        self.frame_interval_s = 1.0 / self._fps if self._fps else 0.0
        self.on_demand = not self._fps
        self._images: list[StillPicture] = []
        self._next = 0
        self._pacer = Pacer(self._fps)

    def open(self) -> None:
        path = Path(self.name)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files = [path]
        else:
            raise SourceError(f"camera.source: {self.name}: no such file or folder")
        images = []
        for file in files:
            problem = user_file_problem(file, MAX_IMAGE_BYTES)  # a FIFO would hang imread
            if problem is not None:
                log.warning("%s: %s, skipped", file, problem)
                continue
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s: cannot read image, skipped", file)
                continue
            images.append(StillPicture(image))
        if not images:
            raise SourceError(f"camera.source: {self.name}: no readable images")
        self._images, self._next, self._pacer = images, 0, Pacer(self._fps)
        log.info("source %s: %d image(s), %s", self.name, len(images),
                 f"{self._fps:g} fps" if self._fps else "as fast as possible")

    def read(self, stop: threading.Event) -> StillPicture | None:
        if not self._images:
            return None
        self._pacer.wait(stop)
        image = self._images[self._next]
        self._next = (self._next + 1) % len(self._images)
        return image

    def close(self) -> None:
        self._images = []
