"""Heads nobody should trust, in process: forged numbers, huge payloads, floods, poisoned files.

A fleet member's head arrives from anyone who can publish to the broker; each
case here is one a stranger can send (issue 23). The real extractor's
embeddings of the photos' views (tests/heads.py) stand for what members learned.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from heads import EXTRACTOR, classifier_for, make_head, top
from learn_views import TEST, views

from edgecam.common.files import set_aside
from edgecam.core.stats import Stats
from edgecam.fleet import heads as heads_module
from edgecam.fleet.headfiles import local_head, saved_members
from edgecam.fleet.heads import MAX_PAYLOAD, HeadBook, Target
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import MEMBER_WEIGHT, Head, HeadError, merge_heads


def target(embedder: Embedder, folder: Path) -> Target:
    return Target(None, folder / "local.head", folder / "fleet.head", str(EXTRACTOR),
                  embedder.sha256, embedder.dim)


def forged(embedder: Embedder, train, label: str = "cat", like: str = "hopper",
           times: float = 1e9) -> Head:
    """A stranger's head: `label` with the sums and counts of `like` ×`times`."""
    head = make_head(embedder, train, (like,))
    head.classes[0].label = label
    head.classes[0].sum = head.classes[0].sum * times
    head.classes[0].count = int(head.classes[0].count * times)
    return head


def document(embedder: Embedder, train, **class_changes: object) -> bytes:
    data = json.loads(make_head(embedder, train, ("cat",)).to_bytes())
    data["classes"][0].update(class_changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize("changes, problem", [
    ({"count": 10 ** 308}, "is more than 1000000"),
    ({"count": 9 * 10 ** 308}, "is more than 1000000"),
    ({"count": 3.0}, "'count' is not a whole number"),
    ({"sum": [10 ** 400] * 1024}, "corrupt head file"),
    ({"sum": [1e308] * 1024}, "has a value larger than 3"),
])
def test_forged_numbers_are_refused_with_one_line(embedder: Embedder, train, changes, problem) -> None:
    with pytest.raises(HeadError, match=problem):
        Head.parse(document(embedder, train, **changes), "mallory's head")


@pytest.mark.parametrize("payload", [
    b"[" * 100_000 + b"]" * 100_000,  # RecursionError inside json
    b'{"format": "edgecam-head", "version": ' + b"9" * 5000 + b"}",  # past int's 4300 digits
    b'{"format": "edgecam-head", "version": 1, "extractor": {"sha256": "' + b"a" * 64
    + b'", "dim": 1024}, "classes": [{"label": "x", "count": 1, "sum": [NaN]}]}',
    b'{"format": "edgecam-head", "version": 1e999}',
    b"\xff\xfe",
])
def test_payloads_that_raise_inside_the_parser_are_head_errors(payload: bytes) -> None:
    with pytest.raises(HeadError):
        Head.parse(payload, "mallory's head")


def test_the_width_and_the_class_count_are_checked_before_the_sums(embedder: Embedder, train) -> None:
    narrow = Head(embedder.sha256, 8)
    narrow.add("x", [np.eye(8)[0]])
    with pytest.raises(HeadError, match="8-wide, this device's embedding extractor gives 1024"):
        Head.parse(narrow.to_bytes(), "mallory's head", embedder.dim)
    many = {"format": "edgecam-head", "version": 1,
            "extractor": {"sha256": embedder.sha256, "dim": 2},
            "classes": [{"label": f"c{n}", "count": 1, "sum": [1, 0]} for n in range(1001)]}
    with pytest.raises(HeadError, match="1001 classes"):
        Head.parse(json.dumps(many).encode(), "mallory's head")


def test_a_strangers_head_times_a_billion_changes_no_answer(embedder: Embedder, train,
                                                            tmp_path: Path) -> None:
    """mallory claims "cat" with the hopper's sums and counts ×1e9: clipped to MEMBER_WEIGHT
    examples, the cat views stay cat and the hopper's stay hopper (unbounded, cat is lost)."""
    honest = {"a": make_head(embedder, train, ("cat",)), "b": make_head(embedder, train, ("hopper",))}
    book = HeadBook(Stats())
    for device, head in honest.items():
        assert book.offer(device, None, head.to_bytes())
    before = book.merge(target(embedder, tmp_path))
    stranger = forged(embedder, train, times=1e5)  # 3e5 examples: a count the parser accepts
    assert book.offer("mallory", None, stranger.to_bytes())
    after = book.merge(target(embedder, tmp_path))
    assert after.find("cat").count == 3 + MEMBER_WEIGHT
    unbounded = Head(embedder.sha256, embedder.dim)
    for head in (honest["a"], honest["b"], stranger):
        unbounded.merge(head)
    with_bound, without, reference = (classifier_for(embedder, h) for h in (after, unbounded, before))
    lost = 0
    for label in ("cat", "hopper"):
        for image in views(label, TEST):
            assert top(with_bound, image) == top(reference, image) == (before.labels.index(label), label)
            lost += top(without, image)[1] != label
    assert lost >= len(TEST)  # what the bound prevents: the stranger wins without it
    with pytest.raises(HeadError, match="count 3000000000… is more than 1000000"):
        Head.parse(forged(embedder, train).to_bytes(), "mallory's head")  # ×1e9: refused outright


def test_the_bound_keeps_a_members_mean(embedder: Embedder, train) -> None:
    many = make_head(embedder, train, ("cat",))
    many.classes[0].sum *= 40
    many.classes[0].count *= 40
    merged = merge_heads([("a", many)])
    assert merged.find("cat").count == MEMBER_WEIGHT
    np.testing.assert_allclose(merged.prototypes(), many.prototypes(), atol=1e-6)


def test_huge_payloads_and_full_books_are_refused_unread(embedder: Embedder, train, monkeypatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    stats = Stats()
    book = HeadBook(stats)
    parsed = []
    monkeypatch.setattr(Head, "parse", classmethod(lambda cls, *a: parsed.append(a) or None))
    assert not book.offer("mallory", None, b" " * (MAX_PAYLOAD + 1))
    assert parsed == [] and stats.get("fleet_heads_refused") == 1
    monkeypatch.undo()
    monkeypatch.setattr(heads_module, "MAX_ENTRIES", 2)
    head = make_head(embedder, train, ("cat",)).to_bytes()
    assert book.offer("a", None, head) and book.offer("b", None, head)
    with caplog.at_level(logging.WARNING):
        assert not book.offer("c", None, head)
        assert not book.offer("c", None, head)
    assert book.size() == 2
    assert "mallory's head: 4,194,305 bytes, more than a head may be (4,194,304)" in caplog.text
    assert [r.getMessage() for r in caplog.records if "c's" in r.getMessage()] == [
        "fleet: refused c's head: the fleet already has 2 members' heads (at most 2); "
        "merging the others"]


def test_any_exception_from_a_payload_is_a_refusal(monkeypatch, caplog) -> None:
    def explode(*_args: object) -> Head:
        raise MemoryError
    monkeypatch.setattr(Head, "parse", classmethod(lambda cls, *a: explode()))
    book = HeadBook(Stats())
    with caplog.at_level(logging.WARNING):
        assert not book.offer("mallory", "door", b"{}")
    assert "mallory's head for zone door: unreadable (MemoryError)" in caplog.text


def test_a_flood_of_bad_heads_gives_a_bounded_number_of_lines(caplog) -> None:
    """4,000 messages: 2 members × 2 reasons, then 3,996 names. One line per member and reason,
    at most LOGGED_MEMBERS members, then one line saying the rest are counted only."""
    stats = Stats()
    book = HeadBook(stats)
    with caplog.at_level(logging.WARNING):
        for n in range(1000):
            for device in ("m1", "m2"):
                book.offer(device, None, b"{not json" if n % 2 else b" " * (MAX_PAYLOAD + 1))
        for n in range(2000):
            book.offer(f"stranger{n}", None, b"[" * 10_000)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 + (heads_module.LOGGED_MEMBERS - 2) + 1, len(lines)
    assert lines[-1].startswith(f"fleet: refused heads from {heads_module.LOGGED_MEMBERS} members")
    assert stats.get("fleet_heads_refused") >= len(lines) - 1


def test_poisoned_files_are_set_aside(embedder: Embedder, train, tmp_path: Path, caplog) -> None:
    where = target(embedder, tmp_path)
    good = make_head(embedder, train, ("cat",)).to_bytes()
    where.local.write_bytes(good[: len(good) // 2])
    poisoned = json.loads(good)
    poisoned["classes"][0]["count"] = 2 * 10 ** 308
    where.members_file.write_text(json.dumps(poisoned))
    where.merged.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert local_head(where) is None
        assert saved_members(where) is None
    for path in (where.local, where.members_file, where.merged):
        assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    assert len(caplog.records) == 3 and "set aside as " in caplog.text
    assert "local.head.corrupt" in caplog.text
    assert set_aside(tmp_path / "missing", "why") is None
    where.local.write_bytes(good)
    assert local_head(where) is not None
