"""The journal output with an injected sender (the real journald is exercised in test_service)."""

from __future__ import annotations

import dataclasses

from edgecam.core.results import Classification, Label, Result
from edgecam.outputs.journal import JournalOutput

RESULT = Result(1042, 1795838020.394, 41.7, 12.0,
                Classification((Label(286, "Egyptian cat", 0.87), Label(282, "tabby", 0.06)), 10.0))


def test_each_result_is_one_entry_with_the_contract_fields() -> None:
    sent: list[dict[str, str]] = []
    JournalOutput(lambda **fields: sent.append(fields)).emit(RESULT)
    assert sent == [{"MESSAGE": "Egyptian cat 0.87 (42 ms)", "PRIORITY": "6",
                     "SYSLOG_IDENTIFIER": "edgecam", "EDGECAM_LABEL": "Egyptian cat",
                     "EDGECAM_INDEX": "286", "EDGECAM_SCORE": "0.8700",
                     "EDGECAM_LATENCY_MS": "41.7", "EDGECAM_SEQ": "1042"}]


def test_a_label_change_with_a_snapshot_names_it() -> None:
    sent: list[dict[str, str]] = []
    JournalOutput(lambda **fields: sent.append(fields)).emit(
        dataclasses.replace(RESULT, snapshot_path="/var/lib/edgecam/snapshots/frame/x.jpg"))
    assert sent[0]["EDGECAM_SNAPSHOT"] == "/var/lib/edgecam/snapshots/frame/x.jpg"
    assert sent[0]["MESSAGE"] == "Egyptian cat 0.87 (42 ms)"


def test_without_python_systemd_it_is_one_readable_line_on_stderr(capsys) -> None:
    JournalOutput(None).emit(RESULT)
    err = capsys.readouterr().err
    assert err == "edgecam: Egyptian cat 0.87 (42 ms) [index 286, seq 1042]\n"
