"""The `edgecam` command line: parses arguments and turns user errors into one line.

Every subcommand is a small function; the work lives in the modules they call.
A mistake the user can fix (EdgecamError) is printed as `edgecam: <message>`
with a sysexits code, and so is an optional piece the command needs but that
is not installed (dependencies.py: its own code); anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edgecam import __version__
from edgecam.cli import fleet_keys
from edgecam.config import SINGLE, Camera, Config, load_config, to_yaml
from edgecam.daemon.logs import setup_logging
from edgecam.dependencies import from_import_error
from edgecam.errors import EX_BROKEN_PIPE, EX_DATAERR, EX_NOINPUT, ConfigError, EdgecamError, ModelError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecam", description="Real-time camera inference daemon.")
    parser.add_argument("--version", action="version", version=f"edgecam {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-c", "--config", metavar="FILE",
                         help="config file (default: the camera's /etc/edgecam/NAME.yaml; without "
                              "--camera /etc/edgecam/edgecam.yaml if it exists, else the built-in "
                              "defaults)")
        sub.add_argument("--camera", metavar="NAME", type=_camera_name,
                         help="the camera instance (edgecam@NAME): its config, socket and state")

    run = commands.add_parser("run", help="run the daemon in the foreground (what systemd starts)")
    config_option(run)
    run.add_argument("--source", metavar="SRC", help="override camera.source")
    run.add_argument("--print", action="store_true", dest="print_results",
                     help="also write every emitted result on stdout: one readable line in a "
                     "terminal, a JSON line when piped")
    run.add_argument("--json", action="store_true",
                     help="with --print: JSON lines in a terminal too")
    run.set_defaults(func=_run)

    check = commands.add_parser("check-config", help="validate the config and print it")
    config_option(check)
    check.add_argument("-q", "--quiet", action="store_true",
                       help="print nothing when the config is valid (errors still print)")
    check.set_defaults(func=_check_config)

    ip_filter = commands.add_parser(
        "ip-filter", help="print the systemd drop-in letting the service reach what the config names",
        description="The unit allows localhost only; `make install` writes this drop-in "
                    "(/etc/systemd/system/edgecam.service.d/network.conf) from the config.")
    config_option(ip_filter)
    ip_filter.set_defaults(func=_ip_filter)

    _classify_parser(commands, config_option)
    tail = commands.add_parser("tail", help="print the running daemon's results")
    tail.add_argument("--socket", metavar="PATH",
                      help="the daemon's socket (default: outputs.socket.path of the config)")
    config_option(tail)
    tail.add_argument("--json", action="store_true", help="print the raw JSON lines")
    tail.set_defaults(func=_tail)

    _learn_parser(commands, config_option)

    shots = commands.add_parser(
        "snapshots", help="list the saved label changes, newest first",
        description="The snapshots in snapshots.dir, newest first: time, zone, label, score, path. "
                    "A wrong one becomes a training example: edgecam learn add RIGHT_LABEL "
                    "SNAPSHOT.jpg --zone NAME.")
    config_option(shots)
    shots.add_argument("--zone", metavar="NAME", help="only this zone's")
    shots.add_argument("--label", metavar="L", help="only those whose top label is L (exactly)")
    shots.add_argument("--json", action="store_true",
                       help='one {"ts", "zone", "label", "index", "score", "path"} object a line')
    shots.set_defaults(func=_snapshots)

    doctor = commands.add_parser(
        "doctor", help="check the set-up: config, runtime, model, camera, socket, board, clock",
        description="Runs every check, each ✓ or ✗ with a one-line fix; exits 0 only when everything "
                    "needed to run passes (the advisory checks never change the exit status).")
    config_option(doctor)
    doctor.add_argument("--json", action="store_true",
                        help='print [{"check", "ok", "detail", "fix"}, ...] instead')
    doctor.set_defaults(func=_doctor)

    fleet = commands.add_parser(
        "fleet", help="several cameras: the members on the MQTT broker",
        description="The fleet shares learned classes and model rollouts over outputs.mqtt's "
                    "broker (the config's fleet: section).")
    fleet_actions = fleet.add_subparsers(dest="action", required=True, metavar="ACTION")
    fleet_status = fleet_actions.add_parser(
        "status", help="the members seen on the broker: online, last seen, model, classes")
    config_option(fleet_status)
    fleet_status.add_argument("--wait", type=float, default=5.0, metavar="S",
                              help="seconds to wait for the broker (default: 5)")
    fleet_status.add_argument("--json", action="store_true", help="one JSON object")
    fleet_status.set_defaults(func=_fleet_status)
    fleet_keys.add_commands(fleet_actions)

    fetch = commands.add_parser("fetch-model", help="download the default model and labels")
    fetch.add_argument("--dir", type=Path, metavar="DIR",
                       help="where to install them (default: /var/lib/edgecam/models)")
    fetch.add_argument("--base-url", metavar="URL",
                       help="where to download from (default: $EDGECAM_MODEL_BASE_URL, else "
                            "Coral's public test data); file:// works")
    fetch.set_defaults(func=_fetch_model)
    return parser


def _classify_parser(commands: argparse._SubParsersAction,
                     config_option: Callable[[argparse.ArgumentParser], None]) -> None:
    classify = commands.add_parser("classify", help="classify image files once")
    classify.add_argument("images", nargs="+", metavar="IMAGE")
    config_option(classify)
    classify.add_argument("--model", metavar="M",
                          help="a .tflite, .onnx or .hef model (default: model.path)")
    classify.add_argument("--labels", metavar="L", help="its labels file (default: model.labels)")
    classify.add_argument("--head", metavar="FILE",
                          help="classify with the classes learned in this head file (default: "
                               "model.head); --model is then its embedding extractor")
    classify.add_argument("--top-k", type=int, metavar="K", help="labels per image")
    classify.add_argument("--json", action="store_true", help="one JSON object per image")
    classify.set_defaults(func=_classify)


def _camera_name(text: str) -> Camera:
    """--camera NAME, checked while parsing (argparse shows the problem with the usage line)."""
    try:
        return Camera.named(text)
    except EdgecamError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--camera {text!r}: ")) from None


def _config(args: argparse.Namespace) -> Config:
    """The config -c and --camera name, with the camera's own paths (config.instance)."""
    return load_config(args.config, args.camera or SINGLE)


def _run(args: argparse.Namespace) -> int:
    from edgecam.daemon.service import Daemon

    return Daemon(args.config, camera=args.camera or SINGLE, source=args.source,
                  print_results=args.print_results,
                  print_text=sys.stdout.isatty() and not args.json).run()


def _tail(args: argparse.Namespace) -> int:
    from edgecam.cli.tail import tail

    path = args.socket or _config(args).outputs.socket.path
    return tail(path, args.json)


def _snapshots(args: argparse.Namespace) -> int:
    from edgecam.cli.snapshots import snapshots

    return snapshots(_config(args).snapshots, args.zone, args.label, args.json)


def _doctor(args: argparse.Namespace) -> int:
    from edgecam.cli.doctor import doctor

    return doctor(args.config, args.camera or SINGLE, args.json)


def _check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.quiet:
        return 0
    camera = args.camera or SINGLE
    source = args.config or (camera.config_path if camera.name else
                             "built-in defaults / /etc/edgecam/edgecam.yaml")
    print(f"# effective config ({source})")
    print(to_yaml(config), end="")
    return 0


def _ip_filter(args: argparse.Namespace) -> int:
    from edgecam.daemon.ipfilter import dropin

    camera = args.camera or SINGLE
    source = args.config or (str(camera.config_path) if camera.name else "the default config")
    print(dropin(_config(args), source, camera), end="")
    return 0


def _classify(args: argparse.Namespace) -> int:
    import cv2

    from edgecam.models.factory import make_classifier, on_camera_sensor
    from edgecam.outputs.human import shown

    model = _config(args).model
    overrides = {"path": args.model, "labels": args.labels, "top_k": args.top_k, "head": args.head}
    if args.model is not None:  # the back-end follows the file given (model.backend: auto)
        overrides["backend"] = "auto"
    model = dataclasses.replace(model, **{k: v for k, v in overrides.items() if v is not None})
    if model.top_k < 1:
        raise EdgecamError("--top-k must be at least 1")
    if on_camera_sensor(model):
        raise ModelError(f"edgecam classify: {Path(model.path).name} runs on the AI Camera's sensor, "
                         "on its own frames only: classify files with a .tflite, .onnx or .hef model "
                         "(--model)")
    classifier = make_classifier(model)
    status = 0
    for image_path in args.images:
        image = cv2.imread(image_path, cv2.IMREAD_COLOR) if Path(image_path).is_file() else None
        if image is None:
            missing = not Path(image_path).exists()
            print(f"edgecam: {image_path}: {'no such file' if missing else 'cannot read image'}",
                  file=sys.stderr)
            status = status or (EX_NOINPUT if missing else EX_DATAERR)
            continue
        result = classifier.classify(image)
        if args.json:
            print(json.dumps({"image": image_path,
                              "labels": [label.as_dict() for label in result.labels],
                              "inference_ms": round(result.inference_ms, 2)}), flush=True)
        else:
            print(image_path)
            for item in shown(label.as_dict() for label in result.labels):
                print(f"  {item['score']:5.3f}  {item['label']} ({item['index']})")
    return status


def _learn_parser(commands: argparse._SubParsersAction,
                 config_option: Callable[[argparse.ArgumentParser], None]) -> None:
    learn = commands.add_parser(
        "learn", help="teach it your own classes from a few photos (weight imprinting)",
        description="Few-shot learning: classes learned from a few examples each, kept in a head "
                    "file (--head, else model.head, else /var/lib/edgecam/heads/default.head; with "
                    "--zone NAME, zones[].model.head, else /var/lib/edgecam/heads/NAME.head; with "
                    "--camera CAM, /var/lib/edgecam/CAM/heads/ instead of /var/lib/edgecam/heads/). "
                    "model.path must be the embedding extractor. A running daemon picks changes "
                    "up on reload (systemctl reload edgecam).")
    actions = learn.add_subparsers(dest="action", required=True, metavar="ACTION")

    def head_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--zone", metavar="NAME",
                         help="the zone's classes (its zones[].model.head, else "
                              "/var/lib/edgecam/heads/NAME.head) instead of the whole frame's")
        sub.add_argument("--head", metavar="FILE", help="the head file (default: model.head, else "
                         "/var/lib/edgecam/heads/default.head)")
        config_option(sub)

    add = actions.add_parser("add", help="add examples to a class (creating it and the head)")
    add.add_argument("label", metavar="LABEL")
    add.add_argument("images", nargs="*", metavar="IMAGE",
                     help="example photos (with --zone: whole frames, such as snapshots, cut to the zone)")
    add.add_argument("--from-camera", type=int, metavar="N",
                     help="take N frames from the configured camera instead (with --zone: cut to "
                          "the zone; stop the daemon first if it uses the same camera)")
    add.add_argument("--countdown", type=float, default=3.0, metavar="S",
                     help="with --from-camera: seconds to get ready (default: 3)")
    add.add_argument("--spread", type=float, default=3.0, metavar="S",
                     help="with --from-camera: seconds the N frames are spread over (default: 3)")
    add.add_argument("--model", metavar="M", help="the embedding extractor (default: model.path; "
                     "with --zone, the zone's)")
    head_option(add)
    add.set_defaults(func=_learn_add)

    listing = actions.add_parser("list", help="list the learned classes")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    head_option(listing)
    listing.set_defaults(func=_learn_list)

    remove = actions.add_parser("remove", help="forget a class")
    remove.add_argument("label", metavar="LABEL")
    head_option(remove)
    remove.set_defaults(func=_learn_remove)

    merge = actions.add_parser(
        "merge", help="combine heads learned on several devices into OUT",
        description="Adds the heads' per-class sums and example counts: the example-weighted "
                    "average of the devices' class prototypes. Photos never leave a device.")
    merge.add_argument("out", type=Path, metavar="OUT")
    merge.add_argument("inputs", nargs="+", type=Path, metavar="IN")
    merge.add_argument("--force", action="store_true",
                       help="replace OUT even if it is not one of the heads merged")
    merge.set_defaults(func=_learn_merge)


def _heads_dir(args: argparse.Namespace) -> Path:
    return (args.camera or SINGLE).heads_dir


def _learn_add(args: argparse.Namespace) -> int:
    from edgecam.models.fewshot import learn
    from edgecam.pipeline.zones import frame_size

    config = _config(args)
    target = learn.find_target(config, args.zone, args.head, args.model, _heads_dir(args))
    label = learn.check_label(args.label)
    if args.from_camera is None and not args.images:
        raise EdgecamError("give example IMAGE files, or --from-camera N")
    if args.from_camera is not None and args.images:
        raise EdgecamError("give example IMAGE files or --from-camera N, not both")
    if args.from_camera is not None and not 1 <= args.from_camera <= 100:
        raise EdgecamError("--from-camera takes 1 to 100 frames")
    if args.countdown < 0 or args.spread < 0:
        raise EdgecamError("--countdown and --spread are seconds, 0 or more")
    if args.images:
        images = learn.read_images(args.images)
        embedder = learn.load_embedder(target.model)
    else:
        embedder = learn.load_embedder(target.model)
        from edgecam.cli.learn_camera import capture_frames

        images = capture_frames(
            config.camera, frame_size(config, embedder.input_size), args.from_camera,
            countdown_s=args.countdown, spread_s=args.spread,
            say=lambda text: print(f"edgecam: {text}", file=sys.stderr))
    path = target.head_path
    done = learn.learn(target.model, path, label, target.view(images), embedder)
    print(f"learned {done.added} example(s) of {done.label!r} ({done.ms_per_example:.0f} ms each): "
          f"class {done.index}, {done.count} example(s) in all")
    print(f"{path}{' (new)' if done.created else ''}: {len(done.labels)} class(es): "
          f"{', '.join(done.labels)}")
    if target.zone is not None and target.zone.model.head is None:
        # The daemon classifies a zone with the head its config names, and never looks for this file.
        print(f"to classify zone {target.zone.name!r} with these classes, set {target.key}.head: "
              f"{path} in the config, then reload")
    return 0


def _learn_list(args: argparse.Namespace) -> int:
    from edgecam.models.fewshot import learn
    from edgecam.models.fewshot.head import Head

    target = learn.find_target(_config(args), args.zone, args.head, heads_dir=_heads_dir(args))
    path, model = target.head_path, target.model
    head = Head.load(path)
    matches = learn.matches_model(head, model.path)
    if args.json:
        print(json.dumps({"head": str(path), "extractor": {"sha256": head.extractor_sha256,
                                                          "name": head.extractor_name,
                                                          "dim": head.dim,
                                                          "is_model_path": matches},
                          "classes": [{"index": i, "label": c.label, "count": c.count}
                                      for i, c in enumerate(head.classes)]}))
        return 0
    print(f"{path}: {len(head.classes)} class(es), extractor {learn.describe_extractor(head)}")
    if matches is False:
        print(f"  (not {target.key}.path {model.path}: classifying with this head needs its own "
              "extractor)")
    for index, item in enumerate(head.classes):
        print(f"  {index:3d}  {item.label}  ({item.count} example{'s' if item.count != 1 else ''})")
    return 0


def _learn_remove(args: argparse.Namespace) -> int:
    from edgecam.models.fewshot import learn

    path = learn.find_target(_config(args), args.zone, args.head, heads_dir=_heads_dir(args)).head_path
    head, count = learn.remove(path, args.label)
    print(f"removed {args.label.strip()!r} ({count} example(s)); {path}: {len(head.classes)} "
          f"class(es) left{': ' if head.classes else ''}{', '.join(head.labels)}")
    return 0


def _learn_merge(args: argparse.Namespace) -> int:
    from edgecam.models.fewshot import learn

    merged = learn.merge(args.out, args.inputs, force=args.force)
    print(f"merged {len(args.inputs)} head(s) into {args.out}: {len(merged.classes)} class(es): "
          + ", ".join(f"{c.label} ({c.count})" for c in merged.classes))
    return 0


def _fleet_status(args: argparse.Namespace) -> int:
    from edgecam.fleet.status import status

    if args.wait <= 0:
        raise EdgecamError("--wait takes a number of seconds above 0")
    return status(_config(args), args.wait, args.json)


def _fetch_model(args: argparse.Namespace) -> int:
    from edgecam.models.fetch import DEFAULT_MODEL_DIR, base_url_from_env, fetch_model

    directory = args.dir or DEFAULT_MODEL_DIR
    fetched = fetch_model(directory, args.base_url or base_url_from_env())
    print(f"{len(fetched)} file(s) downloaded; model and labels verified in {directory}")
    return 0


def _call(args: argparse.Namespace) -> int:
    """Runs the command; an import of a piece that is not installed becomes its one line.

    The modules a command loads import OpenCV at their top, so a missing OpenCV shows
    here, at the command's first import, before any work is done.
    """
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:
        missing = from_import_error(exc)
        if missing is None:
            raise
        raise missing from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("info" if args.command in ("run", "fetch-model") else "warning")
    try:
        return _call(args)
    except ConfigError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return exc.exit_code
    except EdgecamError as exc:
        print(f"edgecam: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # What reads our output went away (`edgecam tail | head -3`): end as `cat` would, without
        # a traceback, and without a second one when Python flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_BROKEN_PIPE
