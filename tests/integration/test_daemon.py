"""The real daemon end to end: real model, real threads, real Unix sockets.

Time limits here only bound a hang; no assertion measures speed.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest
from harness import EXPECTED_TOP1, IMAGES, Client, base_config, wait_for, write_config

MAX_AGE_MS = 100.0


def test_fast_source_drops_frames_and_latency_stays_bounded(tmp_path: Path, daemons) -> None:
    """A camera far faster than the model (photos paced at 240 fps, like a camera that
    delivers whether or not anyone is ready): frames are dropped (counted), never queued.

    The model is held to `pipeline.max_fps` (40 a second), so the camera outpaces it whatever
    this machine's speed: uncapped, LiteRT keeps up with 240 fps on a fast x86-64 core, and
    nothing would be dropped. The slot overwrites the same way whatever makes the model slow."""
    max_fps = 40
    config = base_config(tmp_path, camera={"fps": 240},
                         pipeline={"max_frame_age_ms": MAX_AGE_MS, "max_fps": max_fps})
    daemon = daemons(config)
    client = daemon.client()
    results = client.messages("classification", 3 * max_fps)
    for message in results:
        assert message["latency_ms"] <= MAX_AGE_MS + message["inference_ms"] + 0.2, message
    seqs = [m["seq"] for m in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] - seqs[0] > len(seqs), "every captured frame was classified: nothing dropped"
    stats = client.messages("stats", 1)[0]
    frames = stats["frames"]
    assert frames["dropped_by_reason"]["overwritten"] > 0
    assert frames["dropped"] == sum(frames["dropped_by_reason"].values())
    # Every captured frame is classified, dropped or still in flight: counted but not yet in
    # the slot, in the slot, or in the model.
    assert 0 <= frames["captured"] - frames["classified"] - frames["dropped"] <= 3, frames
    assert stats["latency_ms"]["p99"] is not None


def test_realtime_false_reads_on_demand_and_drops_nothing(tmp_path: Path, daemons) -> None:
    """Images (or a video file) at realtime: false: as fast as the model goes, every frame
    classified, none read just to be dropped."""
    daemon = daemons(base_config(tmp_path, camera={"realtime": False},
                                 pipeline={"max_frame_age_ms": 60_000}))
    client = daemon.client()
    seqs = [m["seq"] for m in client.messages("classification", 100)]
    assert seqs == list(range(seqs[0], seqs[0] + 100)), "consecutive: nothing dropped"
    frames = client.messages("stats", 1)[0]["frames"]
    assert frames["dropped"] == 0
    assert 0 <= frames["captured"] - frames["classified"] <= 3, frames


def test_photos_are_classified_and_printed(tmp_path: Path, daemons) -> None:
    """--print writes the same JSON messages as the socket, with the photos' labels."""
    daemon = daemons(base_config(tmp_path, camera={"fps": 10}), "--print")
    client = daemon.client()
    labels = {m["labels"][0]["label"] for m in client.messages("classification", 6)}
    assert labels == set(EXPECTED_TOP1.values())
    printed = wait_for(lambda: daemon.stdout_lines(), 30, "printed results")
    assert printed[0]["type"] == "classification"
    assert set(printed[0]["labels"][0]) == {"index", "label", "score"}
    assert daemon.stop() == 0


def test_twenty_clients_get_the_same_results_and_a_stuck_one_is_dropped(
        tmp_path: Path, daemons) -> None:
    config = base_config(tmp_path, camera={"realtime": False})
    daemon = daemons(config)
    daemon.wait_socket()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(daemon.socket_path))  # connects and never reads
    clients: list[Client] = []
    try:
        clients.extend(Client(daemon.socket_path) for _ in range(20))
        # Align every client on the first seq all of them will see.
        firsts = [c.messages("classification", 1)[0]["seq"] for c in clients]
        start = max(firsts)
        streams = []
        for client in clients:
            seqs = []
            while len(seqs) < 50:
                message = client.messages("classification", 1)[0]
                if message["seq"] > start:
                    seqs.append(message["seq"])
            streams.append(seqs)
        assert all(s == streams[0] for s in streams)

        def stuck_dropped() -> bool:
            stats = clients[0].messages("stats", 1)[0]
            return stats["outputs"]["socket_clients_dropped"] >= 1
        wait_for(stuck_dropped, 120, "the stuck client to be disconnected")
        # What it never read is counted too.
        assert clients[0].messages("stats", 1)[0]["outputs"]["socket_messages_dropped"] >= 1
        # The others still receive results after the stuck one was dropped.
        clients[0].results(5)
    finally:
        stuck.close()
        for client in clients:
            client.close()
    assert daemon.stop() == 0
    assert not daemon.socket_path.exists(), "the socket file is removed on exit"


def test_clients_come_and_go_and_may_send_garbage(tmp_path: Path, daemons) -> None:
    daemon = daemons(base_config(tmp_path))
    daemon.wait_socket()
    for _ in range(50):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(daemon.socket_path))
        conn.sendall(b"garbage\x00\xff" * 100 + b"x" * 200_000 + b"\n")
        conn.close()
    client = daemon.client()
    client.results(3)
    assert daemon.proc.poll() is None


def test_sigterm_stops_quickly_and_removes_the_socket(tmp_path: Path, daemons) -> None:
    daemon = daemons(base_config(tmp_path))
    daemon.client().messages("classification", 1)
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    assert not daemon.socket_path.exists()
    assert "Traceback" not in daemon.log()


def test_second_daemon_on_the_same_socket_is_refused(tmp_path: Path, daemons) -> None:
    config = base_config(tmp_path)
    first = daemons(config)
    first.client().messages("classification", 1)
    second = daemons(config)
    assert second.proc.wait(60) == 69
    # Named by the first one's claim (daemon.claims), before the socket is even tried.
    assert (f"outputs.socket.path: {first.socket_path} is already used by the default camera "
            f"({first.config_path}, pid {first.proc.pid})") in second.log()
    assert "Traceback" not in second.log()
    assert first.proc.poll() is None
    first.client().results(1)


def test_stale_socket_file_is_replaced(tmp_path: Path, daemons) -> None:
    config = base_config(tmp_path)
    path = Path(config["outputs"]["socket"]["path"])
    path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed daemon leaves
    daemon = daemons(config)
    daemon.client().results(1)
    assert oct(path.stat().st_mode & 0o777) == "0o660"


def test_sighup_applies_a_valid_change(tmp_path: Path, daemons) -> None:
    """min_score 0.99 lets only the macaw (0.996) through; lowering it lets the others in."""
    config = base_config(tmp_path, outputs={"min_score": 0.99})
    daemon = daemons(config)
    client = daemon.client()
    assert {m["labels"][0]["label"] for m in client.messages("classification", 5)} == {"macaw"}
    config["outputs"]["min_score"] = 0.3
    write_config(daemon.config_path, config)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: outputs" in daemon.log(), 30, "the reload")
    labels = {m["labels"][0]["label"] for m in client.messages("classification", 12)}
    assert labels == set(EXPECTED_TOP1.values())


def test_sighup_with_a_broken_config_keeps_the_old_one(tmp_path: Path, daemons) -> None:
    daemon = daemons(base_config(tmp_path))
    client = daemon.client()
    client.messages("classification", 1)
    path = daemon.config_path
    path.write_text(path.read_text() + "pipeline:\n  max_fps: fast\nbogus: 1\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in daemon.log(), 30, "the refused reload")
    log = daemon.log()
    assert f"{path}:" in log and "pipeline.max_fps" in log and "bogus: unknown key" in log
    client.results(3)
    assert daemon.proc.poll() is None


def test_reload_with_a_garbage_model_keeps_the_old_model(tmp_path: Path, daemons) -> None:
    daemon = daemons(base_config(tmp_path))
    client = daemon.client()
    client.messages("classification", 1)
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00not a model" * 100)
    config = dict(daemon.config)
    config["model"] = {**config["model"], "path": str(garbage)}
    write_config(daemon.config_path, config)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in daemon.log(), 30, "the refused reload")
    assert "garbage.tflite" in daemon.log()
    labels = {m["labels"][0]["label"] for m in client.messages("classification", 6)}
    assert labels == set(EXPECTED_TOP1.values())


@pytest.mark.parametrize("problem, message", [
    ("missing-source", "nowhere: no such file"),
    ("missing-model", "model file not found"),
])
def test_start_up_mistakes_are_one_line(tmp_path: Path, daemons, problem: str,
                                        message: str) -> None:
    config = base_config(tmp_path)
    if problem == "missing-source":
        config["camera"]["source"] = str(tmp_path / "nowhere")
    else:
        config["model"]["path"] = str(tmp_path / "none.tflite")
    daemon = daemons(config)
    assert daemon.proc.wait(60) != 0
    log = daemon.log()
    assert message in log and "Traceback" not in log


def test_a_video_file_source_ends_the_daemon_cleanly(tmp_path: Path, daemons) -> None:
    """A file without `loop` plays once; then the daemon exits 0 (nothing to restart)."""
    pytest.importorskip("cv2")
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 341))
    frame = cv2.imread(str(IMAGES / "cat.bmp"))
    for _ in range(10):
        writer.write(frame)
    writer.release()
    config = base_config(tmp_path, camera={"source": str(video), "realtime": True})
    daemon = daemons(config, "--print")
    assert daemon.proc.wait(60) == 0
    labels = [m["labels"][0]["label"] for m in daemon.stdout_lines()]
    assert labels and set(labels) == {"Egyptian cat"}


def test_label_rules_on_the_photos(tmp_path: Path, daemons) -> None:
    """The photos' labels through allow, deny and a threshold, on the real model."""
    # cat.bmp: Egyptian cat 0.88, tabby 0.06; grace_hopper.bmp: military uniform 0.67;
    # parrot.jpg: macaw 0.996.
    config = base_config(tmp_path, outputs={
        "emit": "every_frame", "min_score": 0.05,
        "labels_allow": ["tabby, tabby cat", "military uniform", "macaw"],
        "labels_deny": ["military uniform"], "thresholds": {"macaw": 0.999}})
    daemon = daemons(config)
    results = daemon.client().results(20)
    # The cat photo's top label is not allowed: its best allowed one, tabby, leads instead;
    # the uniform is denied; the macaw falls short of its threshold.
    assert {m["labels"][0]["label"] for m in results} == {"tabby, tabby cat"}
    assert all(len(m["labels"]) == 1 for m in results), "only allowed labels are emitted"
