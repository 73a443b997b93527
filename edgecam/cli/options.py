"""What several commands share: the -c/--camera options and the config they name."""

from __future__ import annotations

import argparse

from edgecam.config import SINGLE, Camera, Config, load_config
from edgecam.errors import EdgecamError

#: what each command module's `add` registers its parser in
Commands = argparse._SubParsersAction


def config_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-c", "--config", metavar="FILE",
                     help="config file (default: the camera's /etc/edgecam/NAME.yaml; without "
                          "--camera /etc/edgecam/edgecam.yaml if it exists, else the built-in "
                          "defaults)")
    sub.add_argument("--camera", metavar="NAME", type=camera_name,
                     help="the camera instance (edgecam@NAME): its config, socket and state")


def camera_name(text: str) -> Camera:
    """--camera NAME, checked while parsing (argparse shows the problem with the usage line)."""
    try:
        return Camera.named(text)
    except EdgecamError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--camera {text!r}: ")) from None


def camera(args: argparse.Namespace) -> Camera:
    """The --camera instance, else the single camera of a plain install."""
    return args.camera or SINGLE


def config(args: argparse.Namespace) -> Config:
    """The config -c and --camera name, with the camera's own paths (config.instance)."""
    return load_config(args.config, camera(args))
