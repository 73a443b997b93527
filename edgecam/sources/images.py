"""Still images: one file or a folder of them, cycled at `camera.fps` (demos and tests)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from edgecam.errors import SourceError
from edgecam.sources.base import Pacer, Source

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})


class ImageSource(Source):
    """Decodes the images once at open, then hands out the same read-only arrays in turn."""

    def __init__(self, path: str, fps: float, realtime: bool) -> None:
        self.name = path
        self._fps = fps if realtime else 0.0
        self.frame_interval_s = 1.0 / self._fps if self._fps else 0.0
        self.on_demand = not self._fps
        self._images: list[np.ndarray] = []
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
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s: cannot read image, skipped", file)
                continue
            image.flags.writeable = False
            images.append(image)
        if not images:
            raise SourceError(f"camera.source: {self.name}: no readable images")
        self._images, self._next, self._pacer = images, 0, Pacer(self._fps)
        log.info("source %s: %d image(s), %s", self.name, len(images),
                 f"{self._fps:g} fps" if self._fps else "as fast as possible")

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if not self._images:
            return None
        self._pacer.wait(stop)
        image = self._images[self._next]
        self._next = (self._next + 1) % len(self._images)
        return image

    def close(self) -> None:
        self._images = []
