"""One camera's instance: its config file, and the defaults that keep it apart from the others.

A Pi with two cameras runs `edgecam@front` and `edgecam@garage` (systemd/edgecam@.service),
each `edgecam run --camera NAME`: its own process, config, socket, state and restart policy,
so a crashing USB driver never takes the Pi camera's pipeline down. Every command takes the
same `--camera NAME` and so finds that instance's files. Without a name, the plain
`edgecam.service` and its paths, as before there were instances.

An instance's config is usually a copy of the default one (`make install NAME=garage` writes
/etc/edgecam/garage.yaml from config/edgecam.yaml), which spells the single-camera paths out.
So a path *left at the single-camera default* means this instance's own: the socket
/run/edgecam/NAME.sock; the snapshots, and the fleet's merged heads and rolled-out models, under
/var/lib/edgecam/NAME/; the MQTT topics (and so the fleet's <device>) under
edgecam/<hostname>-NAME. A path set to anything else is the user's choice and kept (two
instances that then name the same one are refused at start: daemon.claims).
"""

from __future__ import annotations

import dataclasses
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from edgecam.config.fields import DEFAULT_CONFIG_PATH, RUNTIME_DIR, STATE_DIR
from edgecam.config.schema import Config, FleetConfig, SnapshotsConfig, SocketConfig
from edgecam.errors import EdgecamError

#: what systemd's %i may be here: a name that is also a file name, a topic level and a journal value
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
CONFIG_DIR = DEFAULT_CONFIG_PATH.parent
_DEFAULT_SOCKET = SocketConfig().path
_DEFAULT_SNAPSHOTS = SnapshotsConfig().dir
_DEFAULT_FLEET_STATE = FleetConfig().state_dir


def check_name(name: str) -> str:
    """NAME of `--camera NAME` (the unit's %i), or EdgecamError saying what a name may be."""
    if not _NAME.fullmatch(name):
        raise EdgecamError(f"--camera {name!r}: a camera name is 1 to 32 of a-z, 0-9, _ and -, "
                           "starting with a letter or digit (it names /etc/edgecam/NAME.yaml)")
    return name


@dataclass(frozen=True)
class Camera:
    """An instance by name; the empty name is the single-camera service, edgecam.service."""

    name: str = ""

    @classmethod
    def named(cls, name: str | None) -> Camera:
        return cls(check_name(name)) if name else cls()

    @property
    def unit(self) -> str:
        return f"edgecam@{self.name}.service" if self.name else "edgecam.service"

    @property
    def config_path(self) -> Path:
        return CONFIG_DIR / f"{self.name}.yaml" if self.name else DEFAULT_CONFIG_PATH

    @property
    def state_dir(self) -> Path:
        """Heads, snapshots, merged fleet heads; the models stay shared in /var/lib/edgecam/models."""
        return STATE_DIR / self.name if self.name else STATE_DIR

    @property
    def heads_dir(self) -> Path:
        return self.state_dir / "heads"

    @property
    def install_command(self) -> str:
        """What installs (and re-derives the unit's drop-ins for) this instance."""
        return f"sudo make install NAME={self.name}" if self.name else "sudo make install"

    def describe(self) -> str:
        """How the journal and the errors name it: `camera garage` or `the default camera`."""
        return f"camera {self.name}" if self.name else "the default camera"

    def localize(self, config: Config) -> Config:
        """`config` with the paths left at the single-camera defaults made this instance's."""
        if not self.name:
            return config
        outputs = config.outputs
        if outputs.socket.path == _DEFAULT_SOCKET:
            outputs = dataclasses.replace(outputs, socket=dataclasses.replace(
                outputs.socket, path=str(RUNTIME_DIR / f"{self.name}.sock")))
        if not outputs.mqtt.topic_prefix:
            outputs = dataclasses.replace(outputs, mqtt=dataclasses.replace(
                outputs.mqtt, topic_prefix=f"edgecam/{socket.gethostname()}-{self.name}"))
        snapshots = config.snapshots
        if snapshots.dir == _DEFAULT_SNAPSHOTS:
            snapshots = dataclasses.replace(snapshots, dir=str(self.state_dir / "snapshots"))
        fleet = config.fleet
        if fleet.state_dir == _DEFAULT_FLEET_STATE:
            fleet = dataclasses.replace(fleet, state_dir=str(self.state_dir))
        return dataclasses.replace(config, outputs=outputs, snapshots=snapshots, fleet=fleet)


#: the single-camera service, edgecam.service (no --camera)
SINGLE = Camera()
