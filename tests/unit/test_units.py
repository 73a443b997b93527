"""The two unit files: edgecam@.service is edgecam.service but for the lines naming the instance.

Both are whole files (systemd has no include), so the hardening is written twice; this holds
the copies equal, and says which lines may differ and how.
"""

from __future__ import annotations

from conftest import REPO

PLAIN = REPO / "systemd" / "edgecam.service"
TEMPLATE = REPO / "systemd" / "edgecam@.service"

#: the template's own lines, by the setting they set (its header comment aside)
INSTANCE_LINES = {
    "Description=edgecam camera inference daemon (camera %i)",
    "ExecStartPre=/opt/edgecam/bin/edgecam check-config --quiet --camera %i",
    "ExecStart=/opt/edgecam/bin/edgecam run --camera %i",
    "StateDirectory=edgecam edgecam/%i",
}


def settings(text: str) -> list[str]:
    """Sections and settings, in order (comments and blank lines left out)."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_template_is_the_plain_unit_but_for_the_instance_lines() -> None:
    plain, template = settings(PLAIN.read_text()), settings(TEMPLATE.read_text())
    assert len(plain) == len(template)
    differ = {(p, t) for p, t in zip(plain, template, strict=True) if p != t}
    assert {t for _, t in differ} == INSTANCE_LINES
    assert {p.split("=", 1)[0] for p, _ in differ} == {t.split("=", 1)[0] for t in INSTANCE_LINES}


def test_both_keep_the_shared_runtime_folder_and_do_not_loop_on_a_taken_camera() -> None:
    for unit in (PLAIN, TEMPLATE):
        lines = settings(unit.read_text())
        assert "RuntimeDirectoryPreserve=yes" in lines  # one stopping must not remove the others'
        (prevent,) = [line for line in lines if line.startswith("RestartPreventExitStatus=")]
        assert "69" in prevent.split("=", 1)[1].split()


def test_both_set_a_descriptor_limit_the_connection_caps_fit_in() -> None:
    """LimitNOFILE= (soft and hard) holds the caps of common.fds and what the rest needs, and
    stays within select()'s 1024 (paho-mqtt waits with it)."""
    from edgecam.common.fds import NEEDED, SELECT_LIMIT

    for unit in (PLAIN, TEMPLATE):
        (limit,) = [line for line in settings(unit.read_text()) if line.startswith("LimitNOFILE=")]
        value = int(limit.split("=", 1)[1])
        assert NEEDED < value <= SELECT_LIMIT, (unit.name, value)
