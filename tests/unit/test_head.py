"""Few-shot heads (edgecam/models/fewshot/head.py): classes as running sums, merging, the head file.

Heads are made from the real extractor's embeddings of the training views
(tests/heads.py); the file format is checked bit for bit and against corruption.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from heads import EXTRACTOR, LABELS, classifier_for, make_head, top
from learn_views import TEST, views

import edgecam.common.files
from edgecam.errors import EdgecamError
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head, HeadError, merge_heads
from edgecam.models.fewshot.imprint import UNKNOWN_INDEX

# --- classes: running sums ------------------------------------------------------------------------


def test_more_examples_of_a_class_go_into_its_running_sum(embedder: Embedder, train) -> None:
    head = make_head(embedder, train, examples=1)
    head.add("cat", train["cat"][1:])
    assert [c.count for c in head.classes] == [3, 1, 1]
    assert np.allclose(head.classes[0].sum, np.sum(np.array(train["cat"], np.float64), axis=0))
    assert head.labels == list(LABELS)  # the class keeps its number


def test_removing_a_class(embedder: Embedder, train) -> None:
    head = make_head(embedder, train)
    head.remove("hopper")
    classifier = classifier_for(embedder, head)
    assert classifier.labels == ["cat", "parrot"]
    assert all(top(classifier, v) == (0, "cat") for v in views("cat", TEST))
    assert all(top(classifier, v) == (1, "parrot") for v in views("parrot", TEST))  # renumbered
    assert all(top(classifier, v) == (UNKNOWN_INDEX, "unknown") for v in views("hopper", TEST))
    with pytest.raises(EdgecamError, match=r"no class 'dog' \(classes: 'cat', 'parrot'\)"):
        head.remove("dog")


# --- merging heads from several devices ---------------------------------------------------------


def test_merged_heads_equal_one_head_learned_from_all_examples(embedder: Embedder, train) -> None:
    """Two devices learn from disjoint examples; merging their heads gives the head one device
    would have learned from all the examples (up to float rounding), and the same results."""
    one = make_head(embedder, train)
    first = Head(embedder.sha256, embedder.dim, EXTRACTOR.name)
    second = Head(embedder.sha256, embedder.dim, EXTRACTOR.name)
    first.add("cat", train["cat"][:2])
    second.add("cat", train["cat"][2:])
    first.add("hopper", train["hopper"][:1])
    second.add("hopper", train["hopper"][1:])
    second.add("parrot", train["parrot"])  # a class only the second device knows
    merged = merge_heads([("first", first), ("second", second)])
    assert merged.labels == one.labels
    assert [c.count for c in merged.classes] == [c.count for c in one.classes] == [3, 3, 3]
    for mine, theirs in zip(merged.classes, one.classes, strict=True):
        np.testing.assert_allclose(mine.sum, theirs.sum, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.prototypes(), one.prototypes(), rtol=0, atol=1e-6)
    a, b = classifier_for(embedder, merged), classifier_for(embedder, one)
    for label in LABELS:
        for image in views(label, TEST):
            ra, rb = a.classify(image), b.classify(image)
            assert [x.index for x in ra.labels] == [x.index for x in rb.labels]
            np.testing.assert_allclose([x.score for x in ra.labels], [x.score for x in rb.labels],
                                       atol=1e-5)


def test_heads_of_another_extractor_do_not_merge(embedder: Embedder, train) -> None:
    other = Head("0" * 64, embedder.dim, "other.tflite")
    other.add("cat", train["cat"][:1])
    with pytest.raises(HeadError, match="another embedding extractor"):
        merge_heads([("mine.head", make_head(embedder, train)), ("other.head", other)])


# --- the head file --------------------------------------------------------------------------------


def test_a_head_file_reads_back_bit_for_bit(tmp_path: Path, embedder: Embedder, train) -> None:
    head = make_head(embedder, train)
    path = tmp_path / "heads" / "my.head"
    head.save(path)
    again = Head.load(path)
    assert (again.extractor_sha256, again.dim, again.extractor_name) == (
        embedder.sha256, 1024, EXTRACTOR.name)
    assert again.labels == head.labels
    for mine, theirs in zip(again.classes, head.classes, strict=True):
        assert mine.count == theirs.count and np.array_equal(mine.sum, theirs.sum)
    document = json.loads(path.read_text())
    assert (document["format"], document["version"]) == ("edgecam-head", 1)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(p.name for p in path.parent.iterdir()) == ["my.head"]  # no temporary left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _good_document(embedder: Embedder, train) -> dict:
    return make_head(embedder, train, labels=("cat",), examples=2).to_json()


@pytest.mark.parametrize(("spoil", "words"), [
    (lambda d: d.pop("format"), "not an edgecam head file (no \"format\": \"edgecam-head\")"),
    (lambda d: d.update(format="something-else"), "not an edgecam head file"),
    (lambda d: d.update(version=3), "version 3 is newer than this edgecam reads (2)"),
    (lambda d: d.update(version="1"), "bad version"),
    (lambda d: d["extractor"].update(sha256="abc"), "extractor.sha256 is not a sha256"),
    (lambda d: d.pop("classes"), "'classes' is missing"),
    (lambda d: d["classes"][0].update(count=0), "count 0 is not at least 1"),
    (lambda d: d["classes"][0].update(count=1), "longer than 1 normalized embeddings"),
    (lambda d: d["classes"][0]["sum"].pop(), "sum is not 1024 numbers"),
    (lambda d: d["classes"][0]["sum"].__setitem__(5, "x"), "sum is not 1024 numbers"),
    (lambda d: d["classes"][0].update(label=""), "unusable label"),
    (lambda d: d["classes"][0].update(label="unknown"), "unusable label"),
    (lambda d: d["classes"].append(dict(d["classes"][0])), "label 'cat' appears twice"),
])
def test_a_corrupt_head_is_refused_with_one_line(embedder: Embedder, train, spoil, words: str) -> None:
    document = _good_document(embedder, train)
    spoil(document)
    with pytest.raises(HeadError) as caught:
        Head.parse(json.dumps(document).encode(), "x.head")
    message = str(caught.value)
    assert message.startswith("x.head: ") and words in message and "\n" not in message


@pytest.mark.parametrize("data", [b"", b"\x00\x01garbage", b'{"format": "edgecam-head", "vers',
                                  b'{"format": "edgecam-head", "version": 1, "x": NaN}', b"[" * 100000,
                                  "{\"format\": \"\u00e9\"}".encode("latin-1")])
def test_unreadable_bytes_are_a_corrupt_head(data: bytes) -> None:
    with pytest.raises(HeadError, match=r"^x.head: not an edgecam head file, or a corrupt one"):
        Head.parse(data, "x.head")


def test_json_that_is_not_a_head_is_refused() -> None:
    with pytest.raises(HeadError, match=r"^x.head: not an edgecam head file \(no"):
        Head.parse(b'[{"format": "edgecam-head"}]', "x.head")


def test_a_truncated_copy_of_a_real_head_is_refused(tmp_path: Path, embedder: Embedder, train) -> None:
    path = tmp_path / "my.head"
    make_head(embedder, train).save(path)
    data = path.read_bytes()
    for cut in (1, len(data) // 2, len(data) - 2):
        path.write_bytes(data[:cut])
        with pytest.raises(HeadError, match="corrupt"):
            Head.load(path)


def test_a_failed_write_leaves_the_old_head_whole(tmp_path: Path, embedder: Embedder, train,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Atomic writes: a crash or a full disk at the last moment leaves the previous head."""
    path = tmp_path / "my.head"
    make_head(embedder, train, labels=("cat",)).save(path)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(edgecam.common.files.os, "replace", full_disk)  # heads are saved by atomic_write
    with pytest.raises(EdgecamError, match="No space left on device; the previous file is unchanged"):
        make_head(embedder, train).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.head"]
