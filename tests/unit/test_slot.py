"""The latest-wins frame slot: newest frame only, overwrites counted, waits bounded."""

from __future__ import annotations

import threading

import numpy as np

from edgecam.core.frames import Frame
from edgecam.core.slot import FrameSlot


def frame(seq: int) -> Frame:
    return Frame.capture(seq, np.zeros((2, 2, 3), np.uint8))


def test_newest_frame_wins_and_overwrites_are_counted() -> None:
    drops: list[int] = []
    slot = FrameSlot(lambda frame: drops.append(frame.seq))
    for seq in range(1, 6):
        slot.put(frame(seq))
    taken = slot.take(0.0)
    assert taken is not None and taken.seq == 5
    assert len(drops) == 4
    assert slot.take(0.0) is None, "a frame is taken once"


def test_take_wakes_when_a_frame_arrives() -> None:
    slot = FrameSlot(lambda frame: None)
    timer = threading.Timer(0.05, lambda: slot.put(frame(7)))
    timer.start()
    try:
        taken = slot.take(30.0)
    finally:
        timer.cancel()
    assert taken is not None and taken.seq == 7


def test_frames_are_immutable() -> None:
    f = frame(1)
    assert not f.decode().flags.writeable
