"""PyAV sources: network streams (RTSP, HTTP, TCP) and video files, decoded only as needed.

On a slow board the decoder cannot keep up with a 30 fps camera if every
frame is decoded and converted to a full-size BGR image (what
cv2.VideoCapture.read() does): the stream then backs up in the socket
buffer and every result is seconds old. Here the reader thread only demuxes
packets at the source's own rate, so nothing queues upstream, and:

* MJPEG: every packet is a stand-alone JPEG; it is kept compressed and
  decoded only if the model takes it (sources.pictures.JpegPicture).
* H.264/H.265 and other codecs: every packet is decoded (later frames refer
  to it), but converting and scaling wait for the model's frame. When the
  stream is more than `max_behind_ms` behind live, packets are dropped up to
  the next keyframe, which decodes on its own: the reader is back at live
  within one keyframe interval instead of falling further behind. Each such
  packet is counted as `skipped_to_keyframe`.

PyAV is `av` on PyPI and `python3-av` on Raspberry Pi OS (picamera2 depends on
it). It is imported here only; without it, make_source falls back to OpenCV.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import av

from edgecam.core.frames import Dropped, Picture
from edgecam.errors import SourceError
from edgecam.sources.base import Pacer, Source
from edgecam.sources.lag import LiveLag
from edgecam.sources.pictures import JpegPicture, VideoFramePicture

log = logging.getLogger(__name__)

SKIPPED = Dropped("skipped_to_keyframe")
PROBE_S = 1.0
# Containers that carry no timestamps of their own: the demuxer invents them from an assumed
# frame rate, so they cannot tell how far behind live a stream is.
_UNTIMED_FORMATS = frozenset({"mjpeg", "mpjpeg", "jpeg_pipe", "h264", "hevc"})
_INTRA_ONLY = frozenset({"mjpeg"})


class AVSource(Source):
    """A stream (`kind` "stream") or a video file ("file") read with PyAV."""

    def __init__(self, target: str, kind: str, *, realtime: bool = True, loop: bool = False,
                 timeout_s: float = 5.0, max_behind_ms: float = 200.0) -> None:
        self.name = target
        self.kind = kind
        self.network = self.awaited = kind == "stream"
        self.finite = kind == "file" and not loop
        self.on_demand = kind == "file" and not realtime
        self._realtime, self._loop = realtime, loop
        self._timeout_s = timeout_s
        self._max_behind_ms = max_behind_ms
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._packets: Iterator[av.Packet] = iter(())
        self._ready: deque[Picture] = deque()
        self._pacer = Pacer(0)
        self._lag: LiveLag | None = None
        self._skipping = False
        self._intra = False

    def open(self) -> None:
        if self.kind == "file" and not Path(self.name).exists():
            raise SourceError(f"camera.source: {self.name}: no such file")
        # Probing a live stream stops after PROBE_S of it (FFmpeg's default, 5 s, delays the start
        # and, cut short by the open timeout, leaves the connection unusable). Not fflags=nobuffer:
        # it throws away the packets read while probing, the first keyframe with them.
        live = {"rtsp_transport": "tcp", "analyzeduration": str(int(PROBE_S * 1e6))}
        options = live if self.network else {}
        # OpenCV's source explains the read timeout: it must outlast the capture thread's stall timeout.
        timeouts = (max(self._timeout_s, 3 * PROBE_S), max(2 * self._timeout_s, self._timeout_s + 1.0))
        try:
            container = av.open(self.name, options=options, timeout=timeouts)
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"camera.source: cannot open {self.name}: {exc}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"camera.source: {self.name}: no video stream")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        self._container, self._stream = container, stream
        self._packets = container.demux(stream)
        self._intra = stream.codec_context.name in _INTRA_ONLY
        timed = self.network and container.format.name not in _UNTIMED_FORMATS
        self._lag = LiveLag(self._timeout_s) if timed else None
        if self.kind == "file":
            self._pacer = Pacer(rate if self._realtime else 0.0)
            self.frame_interval_s = self._pacer.interval
        else:
            self.frame_interval_s = 1.0 / rate if rate > 0 and timed else 0.0
        how = "JPEGs decoded only for the model" if self._intra else (
            "decoded, converted only for the model" + ("; skips to a keyframe when behind" if timed else ""))
        log.info("source %s opened (%s via PyAV, %s %dx%d, %.3g fps; %s)", self.name, self.kind,
                 stream.codec_context.name, stream.codec_context.width, stream.codec_context.height,
                 rate, how)

    def read(self, stop: threading.Event) -> Picture | Dropped | None:
        while not stop.is_set() and self._stream is not None:
            if self._ready:
                self._pacer.wait(stop)
                return self._ready.popleft()
            packet = self._next_packet()
            if packet is None:
                return None
            if self._intra:
                if packet.size == 0:  # the demuxer's end-of-stream packet
                    continue
                self._ready.append(JpegPicture(bytes(packet), self._stream.codec_context.width,
                                               self._stream.codec_context.height))
                continue
            if packet.size and self._behind(packet):  # (an empty packet flushes the decoder)
                return SKIPPED
            frames = self._stream.codec_context.decode(packet)
            self._ready.extend(VideoFramePicture(frame) for frame in frames)
        return None

    def _next_packet(self) -> av.Packet | None:
        packet = next(self._packets, None)
        if packet is None and self.kind == "file" and self._loop and self._container is not None:
            assert self._stream is not None  # opened with the container
            self._container.seek(0)
            self._stream.codec_context.flush_buffers()
            self._packets = self._container.demux(self._stream)
            packet = next(self._packets, None)
        return packet

    def _behind(self, packet: av.Packet) -> bool:
        """Whether to drop this packet: the stream is behind live and it is not a keyframe.

        Keyframes are always decoded, behind or not, so even a board too slow to decode
        anything else still classifies one frame per keyframe interval.
        """
        if self._lag is None:
            return False
        timestamp = packet.pts if packet.pts is not None else packet.dts
        if timestamp is None or packet.time_base is None:
            self.behind_ms = None
            return False
        behind = self.behind_ms = self._lag.update(float(timestamp * packet.time_base), time.monotonic())
        if packet.is_keyframe:
            self._skipping = behind > self._max_behind_ms
            return False
        self._skipping = self._skipping or behind > self._max_behind_ms
        return self._skipping

    def close(self) -> None:
        container, self._container, self._stream = self._container, None, None
        self._ready.clear()
        if container is not None:
            container.close()
