"""Fakes of picamera2's accelerator devices: `picamera2.devices.IMX500` and `.Hailo`.

Neither the AI Camera nor an AI HAT+ is here, and picamera2 cannot be
installed (tests/fake_picamera2.py says why). These fakes follow the API as
read in raspberrypi/picamera2 0.3.36 (3e6dff0), and the tests that use them say so:

picamera2/devices/imx500/imx500.py
- `IMX500(network_file, camera_id='', tensor_injection=False)`: finds the
  sensor's /dev/v4l-subdev node, else RuntimeError("IMX500: Requested camera
  dev-node not found"); a network file that is not there is RuntimeError
  ("Firmware file ... does not exist."), one the sensor refuses RuntimeError
  ("IMX500: Unable to set network firmware ..."). It must come before
  `Picamera2(imx500.camera_num)`: it uploads the firmware (the rig records
  the order). It ends by setting the whole 4056x3040 sensor as the region.
- `camera_num` (the IMX500's `Num` in `Picamera2.global_camera_info()`: its
  index in libcamera's list, which is not its position in that sorted list;
  `Picamera2(n)` takes the position),
  `network_intrinsics` (a NetworkIntrinsics with `task`, `softmax`, `labels`,
  or None when the .rpk carries none), `get_input_size()` -> (width, height).
- `get_outputs(metadata, add_batch=False)`: None when the metadata has no
  `CnnOutputTensor` (the sensor had no result for that frame), else one array
  per output, reshaped in Fortran order, with a leading batch axis if asked.
- `get_output_shapes(metadata)` from `CnnOutputTensorInfo`;
  `get_kpi_info(metadata)` (static): (dnn_runtime, dsp_runtime) in ms from
  `CnnKpiInfo` (microseconds), None without it.
- `set_inference_roi_abs((left, top, width, height))` in full-sensor pixels.
- Each `IMX500()` sends the network firmware again and resets the region to
  the whole sensor, even while another process streams from it (`Sensor.
  uploads`, `Sensor.rois` record both).
- The network upload: `fw_progress` (FwProgressType: NONE 0 when picamera2
  can read neither /sys/kernel/debug/imx500-fw:*/fw_progress nor its `sudo -n`
  scripts, else DIRECT 1 or INDIRECT 2) and `get_fw_upload_progress(stage)`
  -> (bytes done, total) for FW_NETWORK_STAGE (2), (0, 0) for another stage:
  what `show_network_fw_progress_bar()` draws. No frame has a result until
  it is done (`Sensor.upload`, moved on by the test).

picamera2/devices/hailo/hailo.py
- `Hailo(hef_path, batch_size=None, output_type='FLOAT32')`: HEF(hef_path)
  first, then the process's one VDevice (`Hailo.TARGET`, shared by its
  networks, counted in TARGET_REF_COUNT); a context manager whose exit is
  `close()`, which releases the VDevice with the last network.
- The errors are hailo_platform's, as hailo-ai/hailort v5.2.0 (41a720b)
  raises them: hailort/libhailort/bindings/python/platform/hailo_platform/
  pyhailort/pyhailort.py (`ExceptionWrapper`, the exception classes) over
  bindings/python/src/utils.hpp and pyhailort.cpp (HailoRTStatusException
  derives from HailoRTException; its message is only the status number). A
  bad HEF is `HailoRTInvalidHEFException("Invalid HEF. See hailort.log for
  more information") from HailoRTStatusException("26")`.
- The chip is exclusive to one process (libhailort/src/vdevice/vdevice.cpp:
  a device another process marked in use is skipped, then "not enough free
  devices"): a second process's VDevice raises HailoRTException("libhailort
  failed with error: 74 (HAILO_OUT_OF_PHYSICAL_DEVICES)") from
  HailoRTStatusException("74"). Each `make_devices()` is one process here:
  two of them sharing a HailoBoard are two processes sharing one chip.
- `get_input_shape()` -> (height, width, channels); `describe()` -> ([(name,
  shape, format type)], [(name, shape, format type)]).
- `run(input_data)`: with batch_size None, adds the batch axis itself and
  returns the one output's buffer (float32).
- picamera2/devices/__init__.py imports Hailo inside `try: ... except
  ModuleNotFoundError: pass`: without hailo_platform, `picamera2.devices`
  has no `Hailo` at all.

The tensors are the rig's: known scores, so the tests check labels and scores.
"""

from __future__ import annotations

import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fake_picamera2 import Rig

IMX500_CAMERA = {"Model": "imx500", "Location": 2, "Rotation": 0,
                 "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx500@1a", "Num": 0}
SENSOR_SIZE = (4056, 3040)
RPK_MAGIC = b"9464"  # what an .rpk network file starts with (imx500.py's __ni_from_network)


@dataclass
class Upload:
    """The network firmware going to the sensor over SPI, which the test moves on (`advance`);
    the sensor has no result for any frame until it is done."""

    total: int = 4_000_000
    done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def advance(self, size: int) -> None:
        with self._lock:
            self.done = min(self.total, self.done + size)

    def progress(self) -> tuple[int, int]:
        with self._lock:
            return self.done, self.total

    def finished(self) -> bool:
        return self.progress()[0] >= self.total


@dataclass
class Sensor:
    """The AI Camera's side of the rig: its network's intrinsics and what it outputs per frame."""

    present: bool = True
    intrinsics: dict[str, Any] | None = field(default_factory=lambda: {"task": "classification"})
    input_size: tuple[int, int] = (224, 224)
    #: per frame number, cycled: the output tensor, or None for a frame the sensor has no result for
    outputs: list[np.ndarray | None] = field(default_factory=list)
    kpi_us: tuple[int, int] | None = (4250, 310)
    rois: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: every network file sent to the sensor (each IMX500() sends it again, and resets the ROI)
    uploads: list[str] = field(default_factory=list)
    #: the upload in progress (None: done at once); progress_readable: picamera2 can read it
    upload: Upload | None = None
    progress_readable: bool = True


@dataclass
class HailoBoard:
    """The AI HAT+'s side: whether hailo_platform is installed, a device is free, what it returns."""

    runtime: bool = True
    devices: int = 1
    input_shape: tuple[int, int, int] = (224, 224, 3)
    input_format: str = "FormatType.UINT8"
    scores: np.ndarray = field(default_factory=lambda: np.zeros(1001, np.float32))
    inputs: list[np.ndarray] = field(default_factory=list)
    open: int = 0  # networks loaded and not closed, in every process (picamera2's TARGET_REF_COUNT)
    #: the process (its `picamera2.devices` module) whose VDevice holds the chip, if any
    owner: object | None = None

    def open_vdevice(self, process: object) -> object:
        """VDevice(params): the chip is marked in use by one process; libhailort skips a device
        in use (HAILO_DEVICE_IN_USE) and then finds too few: HAILO_OUT_OF_PHYSICAL_DEVICES."""
        if self.devices < 1 or (self.owner is not None and self.owner is not process):
            raise_status(74)
        self.owner = process
        return object()

    def release_vdevice(self, process: object) -> None:
        if self.owner is process:
            self.owner = None


class HailoRTException(Exception):
    """_pyhailort.HailoRTException, the base of every HailoRT error."""


class HailoRTStatusException(HailoRTException):
    """_pyhailort.HailoRTStatusException: what the C++ binding throws; its message is the status
    number alone (utils.hpp: `HailoRTStatusException(std::to_string(status))`)."""


class HailoRTInvalidHEFException(HailoRTException):
    pass


#: ExceptionWrapper.create_exception_from_status, for the statuses the fake produces
_STATUS = {26: (HailoRTInvalidHEFException, "Invalid HEF. See hailort.log for more information"),
           74: (HailoRTException, "libhailort failed with error: 74 (HAILO_OUT_OF_PHYSICAL_DEVICES)")}


def raise_status(code: int) -> None:
    """What pyhailort's ExceptionWrapper does with a failed libhailort call: the descriptive
    exception, raised `from` the binding's HailoRTStatusException whose message is the number."""
    kind, message = _STATUS[code]
    try:
        raise HailoRTStatusException(str(code))
    except HailoRTStatusException as status:
        raise kind(message) from status


def write_rpk(path: Path) -> Path:
    """An .rpk-looking network file (the fake sensor accepts what starts with the magic)."""
    path.write_bytes(RPK_MAGIC + b"\0" * 60)
    return path


def metadata(rig: Rig, sensor: Sensor, number: int) -> dict[str, Any]:
    """A frame's request metadata as libcamera fills it for the IMX500 (SensorTimestamp always)."""
    found: dict[str, Any] = {"SensorTimestamp": 1_000_000 * number}
    if sensor.upload is not None and not sensor.upload.finished():
        return found  # the network is not on the sensor yet
    tensor = sensor.outputs[number % len(sensor.outputs)] if sensor.outputs else None
    if tensor is not None:
        found["CnnOutputTensor"] = [float(v) for v in np.asarray(tensor).reshape(-1, order="F")]
        found["CnnOutputTensorInfo"] = [tuple(np.asarray(tensor).shape)]
        if sensor.kpi_us is not None:
            found["CnnKpiInfo"] = list(sensor.kpi_us)
    return found


class FakeNetworkIntrinsics:
    """picamera2.devices.imx500.NetworkIntrinsics: the properties edgecam reads."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    @property
    def task(self) -> str | None:
        return self._values.get("task")

    @property
    def softmax(self) -> bool | None:
        return self._values.get("softmax")

    @property
    def labels(self) -> list[str] | None:
        return self._values.get("labels")


def make_devices(rig: Rig, sensor: Sensor, board: HailoBoard) -> types.ModuleType:
    """A fresh `picamera2.devices` wired to the rig (install it beside fake_picamera2's modules)."""
    devices = types.ModuleType("picamera2.devices")

    class IMX500:
        def __init__(self, network_file: str, camera_id: str = "", tensor_injection: bool = False
                     ) -> None:
            rig.calls.append(("IMX500.__init__", network_file))
            if not sensor.present:
                raise RuntimeError("IMX500: Requested camera dev-node not found")
            if not Path(network_file).is_file():
                raise RuntimeError(f"Firmware file {network_file} does not exist.")
            if not Path(network_file).read_bytes().startswith(RPK_MAGIC):
                raise RuntimeError(f"IMX500: Unable to set network firmware {network_file}: "
                                   "[Errno 22] Invalid argument")
            # Its Num in global_camera_info(): libcamera's index, not the list's position.
            self._camera_num = next(num for num, c in enumerate(rig.cameras) if c["Model"] == "imx500")
            sensor.uploads.append(network_file)
            # picamera2 reads the progress from debugfs (root) or through `sudo -n` scripts; 0 is
            # FwProgressType.NONE (no progress bar), 1 DIRECT.
            self.fw_progress = 1 if sensor.progress_readable else 0
            self.__cfg = {"network_file": network_file, "input_tensor_size": sensor.input_size}
            if sensor.intrinsics is not None:
                self.__cfg["intrinsics"] = FakeNetworkIntrinsics(sensor.intrinsics)
            self.set_inference_roi_abs((0, 0, *SENSOR_SIZE))

        @property
        def camera_num(self) -> int:
            return self._camera_num

        @property
        def config(self) -> dict[str, Any]:
            return self.__cfg

        @property
        def network_intrinsics(self) -> FakeNetworkIntrinsics | None:
            return self.__cfg.get("intrinsics")

        def get_input_size(self) -> tuple[int, int]:
            return self.config["input_tensor_size"]

        def get_fw_upload_progress(self, stage_req: int) -> tuple[int, int]:
            assert self.fw_progress != 0  # picamera2 asserts it too (_fw_progress_read)
            if stage_req != 2 or sensor.upload is None:  # FW_NETWORK_STAGE; no upload under way
                return (0, 0)
            return sensor.upload.progress()

        def get_output_shapes(self, metadata: dict[str, Any]) -> list[tuple[int, ...]]:
            return list(metadata.get("CnnOutputTensorInfo") or [])

        def get_outputs(self, metadata: dict[str, Any], add_batch: bool = False
                        ) -> list[np.ndarray] | None:
            rig.calls.append(("get_outputs", add_batch))
            tensor = metadata.get("CnnOutputTensor")
            if not tensor:
                return None
            flat = np.fromiter(tensor, dtype=np.float32)
            outputs, offset = [], 0
            for shape in self.get_output_shapes(metadata):
                size = int(np.prod(shape))
                reshaped = flat[offset:offset + size].reshape(shape, order="F")
                outputs.append(np.expand_dims(reshaped, 0) if add_batch else reshaped)
                offset += size
            return outputs

        @staticmethod
        def get_kpi_info(metadata: dict[str, Any]) -> tuple[float, float] | None:
            kpi = metadata.get("CnnKpiInfo")
            if kpi is None:
                return None
            return kpi[0] / 1000, kpi[1] / 1000

        def set_inference_roi_abs(self, roi: tuple[int, int, int, int]) -> None:
            left, top, width, height = roi
            right, bottom = min(left + width, SENSOR_SIZE[0]), min(top + height, SENSOR_SIZE[1])
            sensor.rois.append((left, top, right - left, bottom - top))  # Rectangle.bounded_to

    class Hailo:
        TARGET: object | None = None  # picamera2's one VDevice for the process, shared by its networks
        TARGET_REF_COUNT = 0

        def __init__(self, hef_path: str, batch_size: int | None = None,
                     output_type: str = "FLOAT32") -> None:
            rig.calls.append(("Hailo.__init__", hef_path))
            if Path(hef_path).read_bytes()[:4] != b"HEF\0":  # HEF(hef_path) comes first
                raise_status(26)
            if Hailo.TARGET is None:
                Hailo.TARGET = board.open_vdevice(devices)
            Hailo.TARGET_REF_COUNT += 1
            self.batch_size = batch_size
            board.open += 1
            self._closed = False

        def __enter__(self) -> Hailo:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.close()

        def get_input_shape(self) -> tuple[int, int, int]:
            return board.input_shape

        def describe(self) -> tuple[list[tuple[str, Any, str]], list[tuple[str, Any, str]]]:
            return ([("input_layer1", board.input_shape, board.input_format)],
                    [("fc1", (board.scores.size,), "FormatType.FLOAT32")])

        def run(self, input_data: np.ndarray) -> np.ndarray:
            if self._closed:
                raise RuntimeError("run on a closed Hailo")
            if self.batch_size is None:
                input_data = np.expand_dims(input_data, axis=0)
            board.inputs.append(np.array(input_data))
            return np.array(board.scores, np.float32)

        def close(self) -> None:
            rig.calls.append(("Hailo.close", None))
            if self._closed:
                return
            self._closed = True
            board.open -= 1
            Hailo.TARGET_REF_COUNT -= 1
            if Hailo.TARGET_REF_COUNT == 0:  # the last network releases the VDevice
                board.release_vdevice(devices)
                Hailo.TARGET = None

    devices.IMX500 = IMX500
    if board.runtime:
        devices.Hailo = Hailo
    return devices
