"""The `edgecam` command line: parses arguments and turns user errors into one line.

Every subcommand is a small function; the work lives in the modules they call.
A mistake the user can fix (EdgecamError) is printed as `edgecam: <message>`
with a sysexits code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from edgecam import __version__
from edgecam.config import load_config, to_yaml
from edgecam.errors import EX_DATAERR, EX_NOINPUT, ConfigError, EdgecamError
from edgecam.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecam", description="Real-time camera inference daemon.")
    parser.add_argument("--version", action="version", version=f"edgecam {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-c", "--config", metavar="FILE",
                         help="config file (default: /etc/edgecam/edgecam.yaml if it exists, "
                              "else the built-in defaults)")

    run = commands.add_parser("run", help="run the daemon in the foreground (what systemd starts)")
    config_option(run)
    run.add_argument("--source", metavar="SRC", help="override camera.source")
    run.add_argument("--print", action="store_true", dest="print_results",
                     help="also write every emitted result as a JSON line on stdout")
    run.set_defaults(func=_run)

    check = commands.add_parser("check-config", help="validate the config and print it")
    config_option(check)
    check.set_defaults(func=_check_config)

    classify = commands.add_parser("classify", help="classify image files once")
    classify.add_argument("images", nargs="+", metavar="IMAGE")
    config_option(classify)
    classify.add_argument("--model", metavar="M", help="a .tflite model (default: model.path)")
    classify.add_argument("--labels", metavar="L", help="its labels file (default: model.labels)")
    classify.add_argument("--top-k", type=int, metavar="K", help="labels per image")
    classify.add_argument("--json", action="store_true", help="one JSON object per image")
    classify.set_defaults(func=_classify)

    tail = commands.add_parser("tail", help="print the running daemon's results")
    tail.add_argument("--socket", metavar="PATH",
                      help="the daemon's socket (default: outputs.socket.path of the config)")
    config_option(tail)
    tail.add_argument("--json", action="store_true", help="print the raw JSON lines")
    tail.set_defaults(func=_tail)

    fetch = commands.add_parser("fetch-model", help="download the default model and labels")
    fetch.add_argument("--dir", type=Path, metavar="DIR",
                       help="where to install them (default: /var/lib/edgecam/models)")
    fetch.add_argument("--base-url", metavar="URL",
                       help="where to download from (default: $EDGECAM_MODEL_BASE_URL, else "
                            "Coral's public test data); file:// works")
    fetch.set_defaults(func=_fetch_model)
    return parser


def _run(args: argparse.Namespace) -> int:
    from edgecam.service import Daemon

    return Daemon(args.config, source=args.source, print_results=args.print_results).run()


def _tail(args: argparse.Namespace) -> int:
    from edgecam.tail import tail

    path = args.socket or load_config(args.config).outputs.socket.path
    return tail(path, args.json)


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    source = args.config or "built-in defaults / /etc/edgecam/edgecam.yaml"
    print(f"# effective config ({source})")
    print(to_yaml(config), end="")
    return 0


def _classify(args: argparse.Namespace) -> int:
    import cv2

    from edgecam.classifier import Classifier

    model = load_config(args.config).model
    overrides = {"path": args.model, "labels": args.labels, "top_k": args.top_k}
    model = dataclasses.replace(model, **{k: v for k, v in overrides.items() if v is not None})
    if model.top_k < 1:
        raise EdgecamError("--top-k must be at least 1")
    classifier = Classifier.from_config(model)
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
            for label in result.labels:
                print(f"  {label.score:5.3f}  {label.label} ({label.index})")
    return status


def _fetch_model(args: argparse.Namespace) -> int:
    from edgecam.fetch import DEFAULT_MODEL_DIR, base_url_from_env, fetch_model

    directory = args.dir or DEFAULT_MODEL_DIR
    fetched = fetch_model(directory, args.base_url or base_url_from_env())
    print(f"{len(fetched)} file(s) downloaded; model and labels verified in {directory}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("info" if args.command in ("run", "fetch-model") else "warning")
    try:
        return args.func(args)
    except ConfigError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return exc.exit_code
    except EdgecamError as exc:
        print(f"edgecam: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

