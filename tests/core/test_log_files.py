"""log_files: false keeps logs on stderr only, so a container with a read-only root file system needs no log dir."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kai_bridge.cli import main


@pytest.mark.parametrize(
    ("log_files", "expect_files"),
    [
        pytest.param("true", True, id="files-on-by-default-setting"),
        pytest.param("false", False, id="files-off-logs-to-stderr-only"),
    ],
)
def test_log_files_false_keeps_the_log_dir_untouched_and_logs_to_stderr_only(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    restore_logging: None,
    log_files: str,
    expect_files: bool,
) -> None:
    log_dir = tmp_path / "logs"
    monkeypatch.setenv("KAI_BRIDGE_LOG_DIR", str(log_dir))
    monkeypatch.setenv("KAI_BRIDGE_LOG_FILES", log_files)
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    file_handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    assert log_dir.exists() is expect_files
    assert bool(file_handlers) is expect_files
    assert any(type(h) is logging.StreamHandler for h in logging.getLogger().handlers)
    capsys.readouterr()
