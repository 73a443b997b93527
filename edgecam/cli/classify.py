"""`edgecam classify`: classify image files once, with the config's model or another."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from edgecam.cli.options import Commands, config, config_option
from edgecam.errors import EX_DATAERR, EX_NOINPUT, EdgecamError, ModelError


def add(commands: Commands) -> None:
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


def _classify(args: argparse.Namespace) -> int:
    import cv2

    from edgecam.models.factory import make_classifier, on_camera_sensor
    from edgecam.outputs.human import shown

    model = config(args).model
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
