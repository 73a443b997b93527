"""Pictures whose decoding waits for the model: a compressed JPEG, a decoded video frame.

An MJPEG stream or a USB webcam delivers every frame as a stand-alone JPEG:
the reader keeps the bytes and only the frame the model takes is decoded, by
libjpeg at the smallest DCT scale (1/2, 1/4, 1/8) that still covers the model
input. An H.264/H.265 frame must be decoded when it arrives (later frames
refer to it), but its colour conversion and scaling are left for the model's
frame and done in one swscale step, straight to the model's input size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from edgecam.core.frames import Fitter, FrameFormatError, Picture, gray_thumbnail, thumbnail_scale

if TYPE_CHECKING:
    import av

_MIN_SIDE = 32  # a JPEG is read at 1/8 scale if that leaves at least this many pixels a side
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
            (2, cv2.IMREAD_REDUCED_COLOR_2))


class JpegPicture(Picture):
    """A JPEG of `width` x `height` (0 if unknown), decoded only for the model."""

    def __init__(self, data: bytes, width: int, height: int) -> None:
        self.data, self.width, self.height = data, width, height

    def decode(self, fit: Fitter) -> np.ndarray:
        buffer = np.frombuffer(self.data, np.uint8)
        image = cv2.imdecode(buffer, jpeg_scale_flag(self.width, self.height, fit)) if buffer.size else None
        if image is None:
            raise FrameFormatError(f"corrupt JPEG frame ({len(self.data)} bytes)")
        return fit(image)

    def thumbnail(self) -> np.ndarray:
        """Gray at 1/8 scale: libjpeg then reads only each 8x8 block's average (no inverse DCT),
        a tenth of a full decode's time, and averaging 64 pixels takes a sensor's noise down."""
        buffer = np.frombuffer(self.data, np.uint8)
        small = self.width >= 8 * _MIN_SIDE and self.height >= 8 * _MIN_SIDE
        flag = cv2.IMREAD_REDUCED_GRAYSCALE_8 if small else cv2.IMREAD_GRAYSCALE
        image = cv2.imdecode(buffer, flag) if buffer.size else None
        if image is None:
            raise FrameFormatError(f"corrupt JPEG frame ({len(self.data)} bytes)")
        return image if small else gray_thumbnail(image)


class VideoFramePicture(Picture):
    """A decoded PyAV VideoFrame (YUV), converted and scaled only for the model."""

    # It was decoded (the reference chain needs it); only the conversion was saved.
    superseded_reason = "overwritten"

    def __init__(self, frame: av.VideoFrame) -> None:
        self.frame = frame

    def decode(self, fit: Fitter) -> np.ndarray:
        width, height = covering_size(self.frame.width, self.frame.height, fit)
        image = self.frame.reformat(width=width, height=height, format="bgr24").to_ndarray()
        return fit(image)

    def thumbnail(self) -> np.ndarray:
        """The luma plane, scaled down by swscale (area averaging) in one step."""
        scale = thumbnail_scale(self.frame.width, self.frame.height)
        small = self.frame.reformat(width=self.frame.width // scale, height=self.frame.height // scale,
                                    format="gray", interpolation="AREA")
        return small.to_ndarray()


def jpeg_scale_flag(width: int, height: int, fit: Fitter) -> int:
    """The imdecode flag of the smallest libjpeg scale whose image still covers the model input."""
    if not (width and height and fit.width and fit.height):
        return cv2.IMREAD_COLOR
    if fit.resize == "crop":
        aspect = fit.width / fit.height
        crop_width = min(width, height * aspect)
        limit = crop_width / fit.width
    else:
        limit = min(width / fit.width, height / fit.height)
    return next((flag for scale, flag in _REDUCED if scale <= limit), cv2.IMREAD_COLOR)


def covering_size(width: int, height: int, fit: Fitter) -> tuple[int, int]:
    """The size to scale a width x height frame to, so that `fit` only crops it (or nothing)."""
    if not (fit.width and fit.height):
        return width, height
    if fit.resize != "crop":
        return fit.width, fit.height
    scale = max(fit.width / width, fit.height / height)
    return max(fit.width, round(width * scale)), max(fit.height, round(height * scale))
