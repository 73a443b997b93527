"""A learned head a power cut left cut, emptied or garbage (issue 24, item 3): the daemon sets it
aside in one line and classifies on (every image `unknown`); `edgecam learn` refuses it.

Only garbage is set aside: a head of another extractor or a newer format is
the user's to fix, and still ends the start in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from heads import EXTRACTOR, OTHER_MODEL, make_head
from learn_views import PHOTOS, TEST, views

from edgecam.common.files import file_sha256
from edgecam.config import ModelConfig
from edgecam.errors import MissingFileError
from edgecam.models.fewshot.head import CorruptHeadError, HeadError, load_or_new
from edgecam.models.fewshot.imprint import HeadClassifier


def damaged(head_bytes: bytes, how: str) -> bytes:
    return {"cut": head_bytes[: len(head_bytes) // 2], "emptied": b"", "zeros": b"\0" * len(head_bytes),
            "garbage": bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8))}[how]


@pytest.fixture
def head_file(tmp_path: Path, embedder, train) -> Path:
    path = tmp_path / "default.head"
    make_head(embedder, train).save(path)
    return path


def model(path: Path) -> ModelConfig:
    return ModelConfig(path=str(EXTRACTOR), head=str(path), threads=1)


@pytest.mark.parametrize("how", ["cut", "emptied", "zeros", "garbage"])
def test_the_daemon_sets_a_corrupt_head_aside_and_classifies_on(head_file: Path, embedder, how: str,
                                                               caplog) -> None:
    head_file.write_bytes(damaged(head_file.read_bytes(), how))
    with pytest.raises(CorruptHeadError):  # classify, doctor: said, and the file left alone
        HeadClassifier.from_config(model(head_file), embedder)
    assert head_file.exists()
    classifier = HeadClassifier.from_config(model(head_file), embedder, recover=True)
    aside = head_file.with_name("default.head.corrupt")
    assert not head_file.exists() and aside.exists()
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{head_file}: not an edgecam head file, or a corrupt one (not valid JSON; truncated?); "
        f"every image is 'unknown' until classes are learned again (edgecam learn add); "
        f"set aside as {aside}"]
    image = views(next(iter(PHOTOS)), TEST)[0]
    assert classifier.classify(image).top.label == "unknown"
    # The next start finds only the .corrupt file: it goes on the same way, in one line.
    caplog.clear()
    again = HeadClassifier.from_config(model(head_file), embedder, recover=True)
    assert again.classify(image).top.label == "unknown"
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


def test_a_missing_head_never_set_aside_is_still_missing(tmp_path: Path, embedder) -> None:
    with pytest.raises(MissingFileError):
        HeadClassifier.from_config(model(tmp_path / "none.head"), embedder, recover=True)


def test_a_head_of_another_extractor_is_not_set_aside(head_file: Path, embedder, train) -> None:
    other = make_head(embedder, train)
    other.extractor_sha256 = file_sha256(OTHER_MODEL)
    other.save(head_file)
    with pytest.raises(HeadError) as caught:
        HeadClassifier.from_config(model(head_file), embedder, recover=True)
    assert not isinstance(caught.value, CorruptHeadError)
    assert head_file.exists()


def test_learn_refuses_a_corrupt_head_and_leaves_it_alone(head_file: Path, embedder) -> None:
    """`edgecam learn add` is a person at a terminal: told in one line, they decide."""
    head_file.write_bytes(damaged(head_file.read_bytes(), "cut"))
    with pytest.raises(CorruptHeadError):
        load_or_new(head_file, embedder.sha256, embedder.dim, str(EXTRACTOR))
    assert head_file.exists()


def test_a_reload_after_learning_again_classifies_with_the_new_classes(head_file: Path, embedder,
                                                                       train) -> None:
    good = head_file.read_bytes()
    head_file.write_bytes(b"")
    running = HeadClassifier.from_config(model(head_file), embedder, recover=True)
    head_file.write_bytes(good)  # `edgecam learn add` wrote a new head
    reloaded = running.reloaded(model(head_file))
    assert reloaded is not running and reloaded.labels == make_head(embedder, train).labels


def test_a_reload_never_sets_a_head_aside_the_running_one_goes_on(head_file: Path, embedder) -> None:
    running = HeadClassifier.from_config(model(head_file), embedder, recover=True)
    head_file.write_bytes(damaged(head_file.read_bytes(), "garbage"))
    with pytest.raises(CorruptHeadError):
        running.reloaded(model(head_file))
    assert head_file.exists() and running.labels
