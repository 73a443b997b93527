"""Which back-end runs a model: from `model.backend`, else from the model file's suffix.

Lives with the config (not in edgecam.models) because the loader checks at
`check-config` time, with file and line, what a back-end asks of the rest of
the config: the AI Camera's network runs on its sensor, so it needs
`camera.source: picamera2` and can look at one region of the picture at most.
"""

from __future__ import annotations

from pathlib import Path

from edgecam.config.fields import picamera_number

BACKENDS = ("auto", "litert", "onnx", "imx500", "hailo")
#: the back-end each model file suffix means with `model.backend: auto`
SUFFIXES = {".tflite": "litert", ".onnx": "onnx", ".rpk": "imx500", ".hef": "hailo"}
#: the back-ends that run on this machine's CPU (`edgecam classify` and `learn` use them)
CPU_BACKENDS = ("litert", "onnx")
NAMES = {"litert": "LiteRT (.tflite)", "onnx": "ONNX Runtime (.onnx)",
         "imx500": "the AI Camera's IMX500 (.rpk)", "hailo": "the AI Kit / AI HAT+'s Hailo (.hef)"}


def backend_of(backend: str, path: str) -> str:
    """The back-end that runs `path`: `backend` unless auto; a file of no known kind is LiteRT's."""
    if backend != "auto":
        return backend
    return SUFFIXES.get(Path(path).suffix.lower(), "litert")


def backend_mismatch(backend: str, path: str) -> str | None:
    """The problem when an explicit back-end is given a model file made for another one."""
    meant = SUFFIXES.get(Path(path).suffix.lower())
    if backend == "auto" or meant is None or meant == backend:
        return None
    return (f"{backend} cannot run {Path(path).name}: a {Path(path).suffix} file is for "
            f"{NAMES[meant]} (set model.backend: {meant}, or auto)")


def camera_problems(backend: str, path: str, source: str, zone_models: tuple[str | None, ...]
                    ) -> list[tuple[str, str]]:
    """What the IMX500 back-end asks of camera.source and the zones, as (key path, problem).

    `zone_models` holds each zone's own model.path (None: the top level's).
    """
    if backend_of(backend, path) != "imx500":
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
