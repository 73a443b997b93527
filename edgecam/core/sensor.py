"""A camera that classifies on its sensor (the AI Camera's IMX500): what its source needs.

The model back-end (models.imx500) is made before the source (picamera2 uploads the
network before the camera opens); the Pi camera source (sources.picamera) then points
it at its region and reads each frame's result from the frame's metadata. Both sides
meet here, in the words below, so that sources/ never imports a model back-end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from edgecam.core.frames import WHOLE, Crop
from edgecam.core.results import Classification


class SensorClassifier(Protocol):
    """A network the camera itself runs (models.imx500.Imx500Classifier)."""

    #: the camera it runs on: its position in the camera list (camera.source picamera2:N)
    camera_num: int

    def aim(self, crop: Crop, sensor_size: tuple[int, int]) -> None:
        """Points the network at `crop` (fractions of the picture) of a sensor this many pixels."""

    def result(self, metadata: dict[str, Any]) -> Classification | None:
        """The sensor's result in one frame's metadata; None when it has none for that frame."""


@dataclass(frozen=True)
class OnSensor:
    """What the Pi camera source needs to read the sensor's results: the network and its region."""

    classifier: SensorClassifier
    crop: Crop = WHOLE
