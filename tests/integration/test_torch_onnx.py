"""A model trained in PyTorch, exported with torch.onnx.export, run by edgecam's ONNX back-end.

A small torchvision network (SqueezeNet 1.1) with fixed random weights is exported to a temp
dir, once in PyTorch's own NCHW layout and once wrapped to take NHWC, and
edgecam's output for a real photo is compared with torch's on the same
input: the pixels fitted to the model (models.preprocess.fit), RGB, through
edgecam's rule for a float input, (pixel-128)/128. Equal within 1e-4, that
proves the layout and the normalization.

torch is not part of `make test`: on x86-64 PyPI's torch wheel is 0.55 GB and
pulls about 3 GB of CUDA libraries (PyPI has no CPU-only build), too much for
CI's fresh 2-core machine. The test skips without it; install it with
`pip install torch torchvision onnx` to run it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import IMAGES

from edgecam.models.classifier import Classifier, open_image_model
from edgecam.models.preprocess import fit

pytest.importorskip("onnxruntime", reason="edgecam[onnx] (onnxruntime) is not installed")
torch = pytest.importorskip(
    "torch", reason="torch is not installed (not in CI: its x86-64 wheels pull ~3.5 GB of CUDA "
    "libraries); pip install torch torchvision onnx to run this")
torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed")
# torch.onnx.export writes the graph with the onnx package, which torch does not install (2.14 here)
pytest.importorskip("onnx", reason="onnx is not installed (torch.onnx.export needs it): pip install onnx")

SIZE = 96
CLASSES = 10
TOLERANCE = 1e-4


class Nhwc(torch.nn.Module):
    """The same network taking [1, H, W, 3] (as TensorFlow-trained models do)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2))


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(15)
    return torchvision.models.squeezenet1_1(weights=None, num_classes=CLASSES).eval()


def export(model: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                      dynamo=False)
    return path


def edgecam_input(photo: str) -> np.ndarray:
    """The photo as edgecam feeds a float model: fitted, RGB, (pixel-128)/128, NHWC."""
    image = cv2.imread(str(IMAGES / photo))
    rgb = cv2.cvtColor(fit(image, SIZE, SIZE, "crop"), cv2.COLOR_BGR2RGB)
    return ((rgb.astype(np.float32) - 128) / 128)[None]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("photo", ["cat.bmp", "parrot.jpg"])
def test_edgecam_gives_torchs_output_for_a_torch_export(network, tmp_path: Path, layout: str,
                                                        photo: str) -> None:
    nhwc = edgecam_input(photo)
    if layout == "NCHW":
        model, example = network, torch.from_numpy(nhwc.transpose(0, 3, 1, 2).copy())
    else:
        model, example = Nhwc(network).eval(), torch.from_numpy(nhwc)
    path = export(model, example, tmp_path / f"net-{layout}.onnx")
    with torch.no_grad():
        expected = model(example).numpy().reshape(-1)

    loaded = open_image_model(str(path), threads=1, resize="crop")
    got, _ = loaded.run(cv2.imread(str(IMAGES / photo)))
    assert loaded.nchw == (layout == "NCHW") and loaded.input_size == (SIZE, SIZE)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE)
    assert float(np.abs(expected).max()) > 10 * TOLERANCE  # a real comparison, not of zeros


def test_a_torch_export_classifies_with_its_labels(network, tmp_path: Path) -> None:
    nhwc = edgecam_input("cat.bmp")
    example = torch.from_numpy(nhwc.transpose(0, 3, 1, 2).copy())
    path = export(network, example, tmp_path / "net.onnx")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {n}\n" for n in range(CLASSES)))
    with torch.no_grad():
        best = int(network(example).argmax())
    result = Classifier(str(path), str(labels), threads=1, top_k=1).classify(
        cv2.imread(str(IMAGES / "cat.bmp")))
    assert (result.top.index, result.top.label) == (best, f"class {best}")
