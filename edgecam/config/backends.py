"""Every model back-end, in one table: its name, file suffix, dependency, camera needs.

Lives with the config (not in edgecam.models) because the loader checks at
`check-config` time, with file and line, what a back-end asks of the rest of
the config: the AI Camera's network runs on its sensor, so it needs
`camera.source: picamera2` and can look at one region of the picture at most.
How each back-end opens a model is the one thing models/ adds (models.factory.OPENERS,
keyed by these names: models is above config, so the opener cannot be written here).
Adding a back-end: one row in TABLE, one opener, one module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecam.config.fields import picamera_number
from edgecam.dependencies import HAILORT, ONNXRUNTIME, PICAMERA2, RUNTIME, Piece


@dataclass(frozen=True)
class Backend:
    """One model back-end, as the config, the factory and the doctor see it."""

    name: str  # model.backend's value
    suffix: str  # the model file's suffix, which picks it with `model.backend: auto`
    title: str  # how messages name it
    piece: Piece  # the optional dependency it needs (edgecam.dependencies)
    missing: str = ""  # the doctor's "not loaded: ..." when the CPU runtime is missing
    fix: str = ""  # the doctor's fix for that
    #: runs on this machine's CPU (`edgecam classify` and `learn` use it; the doctor times it)
    on_cpu: bool = False
    #: runs on the camera's sensor: needs camera.source: picamera2, and one region at most
    on_sensor: bool = False
    #: its device is one process's: the running daemon's while it runs (the doctor asks it)
    exclusive: bool = False


TABLE = (
    Backend("litert", ".tflite", "LiteRT (.tflite)", RUNTIME, "no TensorFlow Lite runtime",
            "pip install 'edgecam[litert]' into edgecam's virtualenv (sudo make install does)",
            on_cpu=True),
    Backend("onnx", ".onnx", "ONNX Runtime (.onnx)", ONNXRUNTIME, "onnxruntime is not installed",
            "pip install 'edgecam[onnx]' into edgecam's virtualenv", on_cpu=True),
    Backend("imx500", ".rpk", "the AI Camera's IMX500 (.rpk)", PICAMERA2, on_sensor=True,
            exclusive=True),
    Backend("hailo", ".hef", "the AI Kit / AI HAT+'s Hailo (.hef)", HAILORT, exclusive=True),
)
BY_NAME = {backend.name: backend for backend in TABLE}
BACKENDS = ("auto", *BY_NAME)
#: the back-end each model file suffix means with `model.backend: auto`
SUFFIXES = {backend.suffix: backend.name for backend in TABLE}


def backend_of(backend: str, path: str) -> str:
    """The back-end that runs `path`: `backend` unless auto; a file of no known kind is LiteRT's."""
    if backend != "auto":
        return backend
    return SUFFIXES.get(Path(path).suffix.lower(), "litert")


def backend_for(backend: str, path: str) -> Backend:
    """The descriptor of the back-end that runs `path` (backend_of's)."""
    return BY_NAME[backend_of(backend, path)]


def backend_mismatch(backend: str, path: str) -> str | None:
    """The problem when an explicit back-end is given a model file made for another one."""
    meant = SUFFIXES.get(Path(path).suffix.lower())
    if backend == "auto" or meant is None or meant == backend:
        return None
    return (f"{backend} cannot run {Path(path).name}: a {Path(path).suffix} file is for "
            f"{BY_NAME[meant].title} (set model.backend: {meant}, or auto)")


def camera_problems(backend: str, path: str, source: str, zone_models: tuple[str | None, ...]
                    ) -> list[tuple[str, str]]:
    """What the IMX500 back-end asks of camera.source and the zones, as (key path, problem).

    `zone_models` holds each zone's own model.path (None: the top level's).
    """
    if not backend_for(backend, path).on_sensor:
        return []
    found = []
    if picamera_number(source) is None:
        found.append(("camera.source", f"the AI Camera's network ({Path(path).name}) runs on its "
                      "sensor: camera.source must be picamera2 (picamera2:1 on a Pi 5's second "
                      "port)"))
    if len(zone_models) > 1:
        found.append(("zones", f"the AI Camera's sensor classifies one region of the picture, not "
                      f"{len(zone_models)}: keep one zone, or use a .tflite or .onnx model for several"))
    elif zone_models and zone_models[0] is not None:
        found.append(("zones", "with the AI Camera the zone is the sensor's region, classified by "
                      f"{Path(path).name}: a zone's own model.path cannot be used there"))
    return found
