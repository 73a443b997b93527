"""`edgecam learn`: few-shot classes in a head file (add, list, remove, merge).

The learning itself is models/fewshot/learn.py; the camera's frames to learn
from, learn_camera.py. Here: the options and what each action prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgecam.cli.options import Commands, camera, config, config_option
from edgecam.errors import EdgecamError


def add(commands: Commands) -> None:
    learn = commands.add_parser(
        "learn", help="teach it your own classes from a few photos (weight imprinting)",
        description="Few-shot learning: classes learned from a few examples each, kept in a head "
                    "file (--head, else model.head, else /var/lib/edgecam/heads/default.head; with "
                    "--zone NAME, zones[].model.head, else /var/lib/edgecam/heads/NAME.head; with "
                    "--camera CAM, /var/lib/edgecam/CAM/heads/ instead of /var/lib/edgecam/heads/). "
                    "model.path must be the embedding extractor. A running daemon picks changes "
                    "up on reload (systemctl reload edgecam).")
    actions = learn.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_parser(actions)

    listing = actions.add_parser("list", help="list the learned classes")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    _head_option(listing)
    listing.set_defaults(func=_learn_list)

    remove = actions.add_parser("remove", help="forget a class")
    remove.add_argument("label", metavar="LABEL")
    _head_option(remove)
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


def _head_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--zone", metavar="NAME",
                     help="the zone's classes (its zones[].model.head, else "
                          "/var/lib/edgecam/heads/NAME.head) instead of the whole frame's")
    sub.add_argument("--head", metavar="FILE", help="the head file (default: model.head, else "
                     "/var/lib/edgecam/heads/default.head)")
    config_option(sub)


def _add_parser(actions: Commands) -> None:
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
    _head_option(add)
    add.set_defaults(func=_learn_add)


def _heads_dir(args: argparse.Namespace) -> Path:
    return camera(args).heads_dir


def _check_add(args: argparse.Namespace) -> None:
    """The refusals of `learn add`'s options, before any model is loaded."""
    if args.from_camera is None and not args.images:
        raise EdgecamError("give example IMAGE files, or --from-camera N")
    if args.from_camera is not None and args.images:
        raise EdgecamError("give example IMAGE files or --from-camera N, not both")
    if args.from_camera is not None and not 1 <= args.from_camera <= 100:
        raise EdgecamError("--from-camera takes 1 to 100 frames")
    if args.countdown < 0 or args.spread < 0:
        raise EdgecamError("--countdown and --spread are seconds, 0 or more")


def _learn_add(args: argparse.Namespace) -> int:
    from edgecam.models.fewshot import learn
    from edgecam.pipeline.zones import frame_size

    loaded = config(args)
    target = learn.find_target(loaded, args.zone, args.head, args.model, _heads_dir(args))
    label = learn.check_label(args.label)
    _check_add(args)
    if args.images:
        images = learn.read_images(args.images)
        embedder = learn.load_embedder(target.model)
    else:
        embedder = learn.load_embedder(target.model)
        from edgecam.cli.learn_camera import capture_frames

        images = capture_frames(
            loaded.camera, frame_size(loaded, embedder.input_size), args.from_camera,
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

    target = learn.find_target(config(args), args.zone, args.head, heads_dir=_heads_dir(args))
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

    path = learn.find_target(config(args), args.zone, args.head, heads_dir=_heads_dir(args)).head_path
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
