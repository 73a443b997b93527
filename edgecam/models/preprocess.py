"""Turns a camera frame into the model's input tensor, in place.

Crop (a view, no copy), resize into a buffer allocated once (the capture
thread's FrameFitter usually did that already), convert BGR to RGB straight
into the interpreter's input tensor. For models whose input
quantization is not the identity on 0..255 pixels (int8, float32, or uint8
with other parameters), the pixels are mapped through the model's own scale
and zero point, assuming the usual MobileNet normalization (pixel-128)/128.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edgecam.core.frames import FrameFormatError

# OpenCV conversion from a frame with this many channels to RGB.
_TO_RGB = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
_MEAN = 128.0
_STD = 128.0
_UINT8 = np.dtype(np.uint8)


class Preprocessor:
    """Writes frames into an input tensor of shape (1, height, width, 3)."""

    def __init__(self, height: int, width: int, dtype: np.dtype, scale: float, zero_point: int,
                 resize: str) -> None:
        self.height, self.width, self.dtype, self.resize = height, width, np.dtype(dtype), resize
        if self.dtype == np.float32 or scale == 0:
            scale, zero_point = 1.0, 0
        # q = pixel * gain + offset maps (pixel - MEAN) / STD through the quantization.
        self.gain = 1.0 / (_STD * scale)
        self.offset = zero_point - _MEAN / (_STD * scale)
        self.direct = self.dtype == np.uint8 and abs(self.gain - 1) < 1e-6 and abs(self.offset) < 1e-6
        self._fitted_shape = (height, width, 3)
        self._resized: dict[int, np.ndarray] = {}
        self._rgb = np.empty((height, width, 3), np.uint8)
        self._scaled = np.empty((height, width, 3), np.float32)
        if self.dtype != np.float32:
            info = np.iinfo(self.dtype)
            self._low, self._high = float(info.min), float(info.max)

    def write(self, frame: np.ndarray, tensor: Callable[[], np.ndarray]) -> None:
        """Writes `frame` (BGR, BGRA or gray uint8) into the array `tensor()` returns."""
        if (self.direct and type(frame) is np.ndarray and frame.dtype is _UINT8
                and frame.shape == self._fitted_shape):
            # Already the model's size (FrameFitter did it): what the checks, the crop and
            # the resize below would come to, without their cost on the inference thread.
            cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=tensor()[0])
            return
        image = _as_image(frame)
        channels = 1 if image.ndim == 2 else image.shape[2]
        resized = self._resized.get(channels)
        if resized is None:
            shape = (self.height, self.width) if channels == 1 else (self.height, self.width, channels)
            resized = self._resized[channels] = np.empty(shape, np.uint8)
        resized = fit(image, self.width, self.height, self.resize, dst=resized)
        target = tensor()[0]
        if self.direct:
            cv2.cvtColor(resized, _TO_RGB[channels], dst=target)
            return
        cv2.cvtColor(resized, _TO_RGB[channels], dst=self._rgb)
        np.multiply(self._rgb, self.gain, out=self._scaled)
        self._scaled += self.offset
        if self.dtype != np.float32:
            np.rint(self._scaled, out=self._scaled)
            np.clip(self._scaled, self._low, self._high, out=self._scaled)
        np.copyto(target, self._scaled, casting="unsafe")


class FrameFitter:
    """Crops and shrinks frames to the model's input size on the capture thread.

    The inference thread then only converts colours into the input tensor: resizing a
    camera frame (0.7 ms for 640x480 here) runs beside inference instead of before it.
    Frames that are not images pass through untouched, for inference to count as bad.
    """

    def __init__(self, input_size: tuple[int, int], resize: str) -> None:
        self.width, self.height = input_size
        self.resize = resize

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        try:
            image = _as_image(frame)
        except FrameFormatError:
            return frame
        fitted = fit(image, self.width, self.height, self.resize)
        return fitted if fitted.flags.owndata or fitted is frame else fitted.copy()


def fit(image: np.ndarray, width: int, height: int, resize: str,
        dst: np.ndarray | None = None) -> np.ndarray:
    """`image` cropped (or stretched) to width x height; itself when it already fits."""
    if resize == "crop":
        image = _center_crop(image, width / height)
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrinking = image.shape[0] > height or image.shape[1] > width
    return cv2.resize(image, (width, height), dst=dst,
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _as_image(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.size == 0:
        raise FrameFormatError("empty frame")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in _TO_RGB):
        raise FrameFormatError(f"unsupported frame shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise FrameFormatError(f"unsupported frame type {frame.dtype} (expected uint8)")
    return frame


def _center_crop(image: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centered region of `image` with width/height = aspect (a view)."""
    height, width = image.shape[:2]
    if width > height * aspect:
        keep = max(1, round(height * aspect))
        left = (width - keep) // 2
        return image[:, left:left + keep]
    keep = max(1, round(width / aspect))
    top = (height - keep) // 2
    return image[top:top + keep]
