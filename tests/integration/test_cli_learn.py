"""`edgecam learn` as a user runs it, `edgecam classify` with a head, and the daemon picking a head up.

The real extractor on views of the real photos written as image files
(tests/learn_views.py); every mistake is one clear line and overwrites nothing.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGES, run_edgecam
from harness import base_config, wait_for
from heads import EXTRACTOR, LABELS, OTHER_MODEL, make_head
from learn_views import TEST, TRAIN, write_views

from edgecam.common.files import file_sha256
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head

_RUNTIME_NOTICE = re.compile(r"^INFO: Created TensorFlow Lite \S+ delegate for CPU\.$")


# --- the command line -------------------------------------------------------------------------------


def one_error_line(result) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if not _RUNTIME_NOTICE.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgecam: "), lines[0]
    return lines[0]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A config with the extractor as model.path and a head beside the config."""
    path = tmp_path / "edgecam.yaml"
    path.write_text(f"model:\n  path: {EXTRACTOR}\n  head: my.head\n  threads: 1\n")
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[Path]]]:
    """Training and test views of each class as image files."""
    folder = tmp_path_factory.mktemp("views")
    return {label: {"train": write_views(folder / "train", label, TRAIN),
                    "test": write_views(folder / "test" / label, label, TEST)} for label in LABELS}


def test_learn_list_classify_remove_from_the_command_line(config_file: Path, photos) -> None:
    head = config_file.parent / "my.head"
    for label in ("cat", "parrot"):
        result = run_edgecam("learn", "add", label, *photos[label]["train"], "-c", config_file)
        assert result.returncode == 0, result.stderr
        assert f"learned 3 example(s) of '{label}'" in result.stdout
    assert head.is_file()
    listed = run_edgecam("learn", "list", "-c", config_file, "--json")
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert document["classes"] == [{"index": 0, "label": "cat", "count": 3},
                                   {"index": 1, "label": "parrot", "count": 3}]
    assert document["extractor"]["sha256"] == file_sha256(EXTRACTOR)
    assert document["extractor"]["is_model_path"] is True
    text = run_edgecam("learn", "list", "-c", config_file).stdout
    assert "2 class(es)" in text and "cat  (3 examples)" in text

    tests = [*photos["cat"]["test"], *photos["parrot"]["test"], *photos["hopper"]["test"]]
    result = run_edgecam("classify", *tests, "-c", config_file, "--json")
    assert result.returncode == 0, result.stderr
    tops = [json.loads(line)["labels"][0] for line in result.stdout.splitlines()]
    assert [t["label"] for t in tops] == ["cat"] * 5 + ["parrot"] * 5 + ["unknown"] * 5
    assert [t["index"] for t in tops] == [0] * 5 + [1] * 5 + [-1] * 5
    assert all(set(t) == {"index", "label", "score"} for t in tops)

    result = run_edgecam("learn", "remove", "cat", "-c", config_file)
    assert result.returncode == 0 and "1 class(es) left: parrot" in result.stdout
    result = run_edgecam("classify", photos["cat"]["test"][0], "-c", config_file, "--json")
    assert json.loads(result.stdout)["labels"][0]["label"] == "unknown"
    other = run_edgecam("learn", "list", "-c", config_file, "--head", head, "--json")
    assert json.loads(other.stdout)["extractor"]["is_model_path"] is True
    config_file.write_text(f"model:\n  path: {OTHER_MODEL}\n  head: my.head\n")
    text = run_edgecam("learn", "list", "-c", config_file).stdout
    assert f"(not model.path {OTHER_MODEL}: classifying with this head needs its own extractor)" in text


def test_classify_takes_a_head_on_the_command_line(tmp_path: Path, photos, embedder: Embedder,
                                                   train) -> None:
    head = tmp_path / "other.head"
    make_head(embedder, train).save(head)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = run_edgecam("classify", photos["hopper"]["test"][2], "-c", empty, "--head", head,
                         "--model", EXTRACTOR, "--top-k", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].endswith("  hopper (1)")


def test_learning_from_the_camera(tmp_path: Path, photos) -> None:
    """--from-camera reads the configured source: here a folder of cat views."""
    config = tmp_path / "edgecam.yaml"
    folder = photos["cat"]["test"][0].parent  # only cat views
    config.write_text(f"camera:\n  source: {folder}\n  fps: 30\n"
                      f"model:\n  path: {EXTRACTOR}\n  head: my.head\n  threads: 1\n")
    result = run_edgecam("learn", "add", "cat", "--from-camera", "3", "--countdown", "0.2",
                         "--spread", "0.2", "-c", config)
    assert result.returncode == 0, result.stderr
    assert "frame 3/3" in result.stderr and "learned 3 example(s) of 'cat'" in result.stdout
    assert [(c.label, c.count) for c in Head.load(tmp_path / "my.head").classes] == [("cat", 3)]


def test_merge_from_the_command_line(tmp_path: Path, embedder: Embedder, train) -> None:
    first, second, out = tmp_path / "pi1.head", tmp_path / "pi2.head", tmp_path / "fleet.head"
    make_head(embedder, {k: v[:1] for k, v in train.items()}, labels=("cat", "hopper")).save(first)
    make_head(embedder, {k: v[1:] for k, v in train.items()}, labels=("parrot", "cat")).save(second)
    result = run_edgecam("learn", "merge", out, first, second)
    assert result.returncode == 0, result.stderr
    assert "cat (3), hopper (1), parrot (2)" in result.stdout
    merged = Head.load(out)
    np.testing.assert_allclose(merged.classes[0].sum, np.sum(np.array(train["cat"], np.float64), 0),
                               atol=1e-12)
    # OUT exists and is not an input: refused, unless --force; an input twice: refused.
    before = out.read_bytes()
    line = one_error_line(run_edgecam("learn", "merge", out, first))
    assert "fleet.head exists and is not one of the heads merged" in line and "--force" in line
    line = one_error_line(run_edgecam("learn", "merge", tmp_path / "new.head", first, first))
    assert "listed twice" in line
    assert out.read_bytes() == before and not (tmp_path / "new.head").exists()
    assert run_edgecam("learn", "merge", out, first, "--force").returncode == 0
    assert Head.load(out).labels == ["cat", "hopper"]


def _existing_head(tmp_path: Path, embedder: Embedder, train) -> Path:
    path = tmp_path / "my.head"
    make_head(embedder, train, labels=("cat",)).save(path)
    return path


def _empty_label(tmp_path, head, photos):
    return ["learn", "add", "  ", *photos["cat"]["train"]], "the label is empty"


def _reserved_label(tmp_path, head, photos):
    return ["learn", "add", "Unknown", *photos["cat"]["train"]], "'unknown' is reserved"


def _unreadable_image(tmp_path, head, photos):
    bad = tmp_path / "not-a-photo.jpg"
    bad.write_text("this is not a JPEG\n")
    return ["learn", "add", "cat", photos["cat"]["train"][0], bad], f"{bad}: cannot read image"


def _missing_image(tmp_path, head, photos):
    return ["learn", "add", "cat", tmp_path / "nowhere.jpg"], "nowhere.jpg: no such file"


def _another_extractor(tmp_path, head, photos):
    return (["learn", "add", "parrot", *photos["parrot"]["train"], "--model", OTHER_MODEL],
            "learned with another embedding extractor")


def _corrupt_head(tmp_path, head, photos):
    head.write_bytes(head.read_bytes()[:5000])
    return ["learn", "add", "parrot", *photos["parrot"]["train"]], "not an edgecam head file, or a corrupt"


def _classify_with_another_extractor(tmp_path, head, photos):
    return (["classify", IMAGES / "cat.bmp", "--model", OTHER_MODEL],
            "learned with another embedding extractor")


def _classify_with_a_corrupt_head(tmp_path, head, photos):
    head.write_text('{"format": "edgecam-head", "version": 1, "extractor": {}, "classes": []}')
    return ["classify", IMAGES / "cat.bmp"], "corrupt head file: 'sha256' is missing"


def _remove_an_unknown_class(tmp_path, head, photos):
    return ["learn", "remove", "dog"], "no class 'dog' (classes: 'cat')"


def _neither_images_nor_camera(tmp_path, head, photos):
    return ["learn", "add", "cat"], "give example IMAGE files, or --from-camera N"


@pytest.mark.parametrize("make", [
    _empty_label, _reserved_label, _unreadable_image, _missing_image, _another_extractor,
    _corrupt_head, _classify_with_another_extractor, _classify_with_a_corrupt_head,
    _remove_an_unknown_class, _neither_images_nor_camera,
], ids=lambda make: make.__name__.strip("_"))
def test_mistakes_are_one_clear_line_and_nothing_is_overwritten(tmp_path: Path, config_file: Path,
                                                                photos, embedder: Embedder, train,
                                                                make) -> None:
    head = _existing_head(tmp_path, embedder, train)
    args, words = make(tmp_path, head, photos)
    before = head.read_bytes()
    result = run_edgecam(*args, "-c", config_file)
    line = one_error_line(result)
    assert words in line, line
    assert result.stdout == ""
    assert head.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries


def test_a_missing_head_is_one_line(tmp_path: Path, config_file: Path) -> None:
    for args in (["learn", "list"], ["learn", "remove", "cat"], ["classify", IMAGES / "cat.bmp"]):
        result = run_edgecam(*args, "-c", config_file)
        assert result.returncode == 66
        assert "head file not found" in one_error_line(result)


# --- the daemon -------------------------------------------------------------------------------------


def test_the_daemon_emits_the_learned_labels_and_reloads_an_updated_head(
        tmp_path: Path, daemons, embedder: Embedder, train) -> None:
    """A stream of held-out views of the learned classes gives their labels; after
    `edgecam learn` adds a class and SIGHUP (config unchanged), that class is emitted too."""
    stream = tmp_path / "stream"
    for label in LABELS:
        write_views(stream, label, TEST[:2])
    head = tmp_path / "my.head"
    make_head(embedder, train, labels=("cat", "parrot")).save(head)
    config = base_config(tmp_path, camera={"source": str(stream), "fps": 10},
                         model={"path": str(EXTRACTOR), "head": str(head)})
    del config["model"]["labels"]
    daemon = daemons(config)
    client = daemon.client()
    messages = client.messages("classification", 12)
    assert {m["labels"][0]["label"] for m in messages} == {"cat", "parrot", "unknown"}
    for message in messages:
        best = message["labels"][0]
        assert set(best) == {"index", "label", "score"}
        assert best["index"] == {"cat": 0, "parrot": 1, "unknown": -1}[best["label"]]
    # learn a third class into the same file, then reload: the config itself is unchanged
    result = run_edgecam("learn", "add", "hopper", *write_views(tmp_path / "train", "hopper", TRAIN),
                         "-c", daemon.config_path)
    assert result.returncode == 0, result.stderr
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: model (files on disk)" in daemon.log(), 30, "the head reload")
    for _ in range(1000):  # results queued on the socket before the reload come first
        if client.message().get("labels", [{}])[0].get("label") == "hopper":
            break
    labels = {m["labels"][0]["label"] for m in client.messages("classification", 12)}
    assert labels == {"cat", "parrot", "hopper"}
    # a head from another extractor is refused on reload, and the daemon goes on
    make_head(embedder, train).save(head)
    text = head.read_text().replace(embedder.sha256, "0" * 64)
    head.write_text(text)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in daemon.log(), 30, "the refused reload")
    assert "another embedding extractor" in daemon.log()
    assert {m["labels"][0]["label"] for m in client.messages("classification", 9)} == {
        "cat", "parrot", "hopper"}
    assert daemon.stop() == 0


def test_the_daemon_refuses_a_head_of_another_extractor(tmp_path: Path, daemons, embedder: Embedder,
                                                        train) -> None:
    head = tmp_path / "my.head"
    make_head(embedder, train).save(head)
    config = base_config(tmp_path, model={"path": str(OTHER_MODEL), "head": str(head)})
    daemon = daemons(config)
    assert daemon.proc.wait(60) == 65
    log = daemon.log()
    assert "learned with another embedding extractor" in log and "Traceback" not in log
