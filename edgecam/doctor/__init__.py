"""`edgecam doctor`'s checks: what a first camera set-up gets wrong, each with its fix.

In the order a frame needs them: the machine (a 64-bit OS), the config, the
runtime, the model (loaded as the daemon loads it, then timed on a real
frame; an accelerator the running daemon holds is not opened: its stats
speak for it), the camera (opened and read, unless the daemon holds it), the socket
folder; then the advisory ones (check.ADVISORY): the journal, the socket
folder's group, the user's groups, memory, disk, temperature, throttling and
the clock. The command's printing and exit status are in cli/doctor.py.
"""

from __future__ import annotations

from pathlib import Path

from edgecam.config import SINGLE, Camera, Config, load_config
from edgecam.daemon.board import read_board
from edgecam.doctor.camera import check_camera
from edgecam.doctor.check import Check, failed, passed
from edgecam.doctor.clock import check_clock
from edgecam.doctor.host import check_board, check_disk, check_journal, check_memory
from edgecam.doctor.machine import check_machine
from edgecam.doctor.model import LoadedModel, check_model, check_runtime, held_by, load_model
from edgecam.doctor.socket import check_socket_folder, check_socket_group, running_daemon
from edgecam.doctor.users import check_groups
from edgecam.errors import ConfigError
from edgecam.models.fewshot.learn import head_path

__all__ = ["ORDER", "Check", "run_checks"]

# What a camera frame is fitted to when the model did not load (the default model's input).
_FALLBACK_INPUT = (224, 224)
#: every check, in the order it is shown (the required ones first)
ORDER = ("platform", "config", "runtime", "model", "camera", "socket folder", "journal", "socket group",
         "groups", "memory", "disk", "temperature", "throttling", "clock")


def run_checks(config_path: str | None, camera: Camera = SINGLE) -> list[Check]:
    """Every check, in ORDER; `config_path` as `-c` (None: the camera's, /etc/edgecam/NAME.yaml;
    without --camera /etc/edgecam/edgecam.yaml or the defaults)."""
    config_check, config = _check_config(config_path, camera)
    runtime = check_runtime(config.model if config is not None else None)
    found = [check_machine(), config_check, runtime, check_groups(), check_memory(),
             *check_board(read_board()), check_clock()]
    if config is not None:
        found += _configured(config, runtime.ok, camera)
    by_name = {check.check: check for check in found}
    return [by_name.get(name) or failed(name, "not checked: the config does not load",
                                        "fix the config first")
            for name in ORDER]


def _configured(config: Config, runtime_ok: bool, instance: Camera) -> list[Check]:
    """The checks of what the config names: model, camera, socket, journal, disk."""
    socket = config.outputs.socket
    daemon = running_daemon(socket.path) if socket.enabled else None
    loaded = held_by(config.model, daemon) or load_model(config.model, runtime_ok)
    input_size = loaded.classifier.input_size if isinstance(loaded, LoadedModel) else _FALLBACK_INPUT
    camera, frame = check_camera(config.camera, input_size, config.pipeline.max_frame_age_ms, daemon)
    model = check_model(config.model, loaded, frame) if isinstance(loaded, LoadedModel) else loaded
    return [model, camera, check_socket_folder(socket),
            check_journal(config.outputs.journal), check_socket_group(socket),
            check_disk(head_path(None, config.model, instance.heads_dir).parent)]


def _check_config(config_path: str | None, camera: Camera) -> tuple[Check, Config | None]:
    path = Path(config_path) if config_path else camera.config_path
    try:
        config = load_config(config_path, camera)
    except ConfigError as exc:
        more = f" (and {len(exc.lines) - 1} more)" if len(exc.lines) > 1 else ""
        fix = (f"edit {path}; `edgecam check-config -c {path}` lists every error with its line"
               if path.exists() else
               "pass -c FILE, or create it from the commented default (config/edgecam.yaml)")
        return failed("config", exc.lines[0] + more, fix), None
    if config_path is None and not path.exists():
        return passed("config", f"the built-in defaults (there is no {path})"), config
    return passed("config", f"{path} is valid"), config
