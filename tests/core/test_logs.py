"""Logging: secrets are scrubbed from every line, files follow the seed's paths."""

from __future__ import annotations

import io
import json
import logging
import secrets
from pathlib import Path

import pytest

from kai_bridge.keys import generate_key_pair
from kai_bridge.logs import configure_logging, redact


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("pat_" + secrets.token_hex(16), id="pat"),
        pytest.param("czs_" + secrets.token_hex(12), id="service-token"),
        pytest.param("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlLXZhbHVl", id="jwt"),
    ],
)
def test_redact_masks_token_shapes(secret: str) -> None:
    assert secret not in redact(f"calling with {secret} now")
    assert secret not in redact(f"Authorization: Bearer {secret}")


def test_redact_masks_private_keys_and_known_values() -> None:
    pem = generate_key_pair().private_pem.decode()
    assert "PRIVATE KEY" not in redact(f"key was {pem}")
    assert "hunter2-value" not in redact("x=hunter2-value", ["hunter2-value"])
    assert redact("plain text stays") == "plain text stays"


def test_log_lines_and_files_never_carry_secrets(tmp_path: Path, restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(level="DEBUG", log_dir=tmp_path / "logs", secrets=["my-api-key-42"], stream=stream)
    log = logging.getLogger("kai_bridge.test")
    log.info("token %s and key %s", "czs_0123456789abcdefXYZ", "my-api-key-42")
    try:
        raise RuntimeError("failed with Bearer abcdefghijklmnop")
    except RuntimeError:
        log.exception("boom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    main_log = (tmp_path / "logs" / "coze_integration.log").read_text()
    error_log = (tmp_path / "logs" / "error.log").read_text()
    for text in (stream.getvalue(), main_log, error_log):
        assert "czs_0123456789abcdefXYZ" not in text
        assert "my-api-key-42" not in text
        assert "abcdefghijklmnop" not in text
    assert "boom" in error_log
    assert "token" not in error_log  # INFO lines stay out of error.log
    assert "[REDACTED]" in main_log


def test_json_format_emits_one_object_per_line(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", json_format=True, stream=stream)
    logging.getLogger("kai_bridge.test").warning("咖啡 %d", 1)
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["message"] == "咖啡 1"
    assert record["level"] == "WARNING"


def test_unwritable_log_dir_is_reported_not_fatal(tmp_path: Path, restore_logging: None) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    problems = configure_logging(level="INFO", log_dir=blocker / "logs", stream=io.StringIO())
    assert problems
    assert "stderr only" in problems[0]


def test_url_credentials_are_scrubbed_from_every_logger_at_debug(tmp_path: Path, restore_logging: None) -> None:
    password, token = "pw-" + secrets.token_hex(8), "tok-" + secrets.token_hex(8)
    stream = io.StringIO()
    configure_logging(level="DEBUG", log_dir=tmp_path / "logs", stream=stream)
    url = f"http://ops:{password}@127.0.0.1:9/mcp?access_token={token}"
    # The loggers of libraries we do not control: the MCP SDK's, httpx's, and a made-up one.
    logging.getLogger("mcp.client.streamable_http").debug("Connecting to StreamableHTTP endpoint: %s", url)
    logging.getLogger("some.library").error("failed to reach %r", url)
    for handler in logging.getLogger().handlers:
        handler.flush()
    texts = [stream.getvalue(), *(p.read_text() for p in (tmp_path / "logs").glob("*.log"))]
    assert "Connecting to StreamableHTTP endpoint: http://ops:***@127.0.0.1:9/mcp?access_token=***" in texts[0]
    for text in texts:
        assert password not in text
        assert token not in text
