"""Training and held-out views of the photos in ../shared/images, for few-shot learning.

Each photo is one class. A view is a crop, a mirror image and/or a change of
brightness of the photo; the training views and the test views of a class are
different views (asserted at import), so a test never classifies a view that
was learned. Used by tests/heads.py, the few-shot tests and bench/learn.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
PHOTOS = {"cat": "cat.bmp", "hopper": "grace_hopper.bmp", "parrot": "parrot.jpg"}


@dataclass(frozen=True)
class View:
    """A region (fractions of width and height), an optional mirror flip and a brightness gain."""

    name: str
    box: tuple[float, float, float, float]  # left, top, right, bottom
    flip: bool = False
    gain: float = 1.0

    def apply(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        left, top, right, bottom = self.box
        out = image[round(top * height):round(bottom * height), round(left * width):round(right * width)]
        if self.flip:
            out = out[:, ::-1]
        if self.gain != 1.0:
            out = cv2.convertScaleAbs(out, alpha=self.gain, beta=0)
        return np.ascontiguousarray(out)


TRAIN = (
    View("top-left", (0.0, 0.0, 0.8, 0.8)),
    View("mirrored", (0.0, 0.0, 1.0, 1.0), flip=True),
    View("dark-center", (0.1, 0.1, 0.9, 0.9), gain=0.6),
)
TEST = (
    View("whole", (0.0, 0.0, 1.0, 1.0)),
    View("bottom-right-bright", (0.2, 0.2, 1.0, 1.0), gain=1.4),
    View("mirrored-top-right", (0.25, 0.0, 1.0, 0.75), flip=True),
    View("dim-bottom-left", (0.0, 0.25, 0.75, 1.0), gain=0.7),
    View("mirrored-dark-middle", (0.15, 0.15, 0.85, 0.85), flip=True, gain=0.5),
)
assert not {(v.box, v.flip, v.gain) for v in TRAIN} & {(v.box, v.flip, v.gain) for v in TEST}


def photo(label: str) -> np.ndarray:
    image = cv2.imread(str(IMAGES / PHOTOS[label]), cv2.IMREAD_COLOR)
    assert image is not None, PHOTOS[label]
    return image


def views(label: str, which: tuple[View, ...]) -> list[np.ndarray]:
    image = photo(label)
    return [view.apply(image) for view in which]


def write_views(folder: Path, label: str, which: tuple[View, ...]) -> list[Path]:
    """The views as PNG files (what a user hands `edgecam learn add`)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for view, image in zip(which, views(label, which), strict=True):
        path = folder / f"{label}-{view.name}.png"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def scenes() -> dict[str, np.ndarray]:
    """Images that are none of the photos: what an empty or covered camera sees."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, 640, dtype=np.uint8)
    return {
        "noise": rng.integers(0, 256, (480, 640, 3), np.uint8),
        "gray": np.full((480, 640, 3), 128, np.uint8),
        "gradient": np.repeat(np.repeat(ramp[None, :, None], 480, axis=0), 3, axis=2),
        "checkerboard": np.repeat(((np.indices((480, 640)).sum(0) // 40) % 2 * 255)
                                  .astype(np.uint8)[:, :, None], 3, axis=2),
    }
