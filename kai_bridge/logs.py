"""Logging set-up: stderr plus rotating files, optional JSON, and a filter that scrubs secrets.

The filter sits on every handler, so it scrubs the records of every logger (the MCP SDK's,
httpx's, uvicorn's) alike: known secret values, token shapes, and the credentials inside
any URL (``http://user:pw@host`` is written ``http://user:***@host``).

Configured once, by the CLI's ``main()``. stdout is never used: in ``kai-bridge stdio`` it
is the MCP wire. The seed guide's files are kept: ``<log_dir>/coze_integration.log`` (all
records at the configured level) and ``<log_dir>/error.log`` (ERROR and above).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from kai_bridge.urls import redact_urls

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging", "redact"]

_PATTERNS: tuple[re.Pattern[str], ...] = (
    # PEM blocks (private keys above all)
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    # JWTs: three base64url segments, the first starting with eyJ
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    # Coze tokens: PATs, service and user OAuth tokens
    re.compile(r"\b(?:pat|czs|czu|sat)_[A-Za-z0-9_-]{8,}"),
    # Authorization headers and bearer values
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:access_token|api_key|apikey|password|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}&]{6,}"),
)
_MASK = "[REDACTED]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values, anything that looks like a key, JWT or token, and the
    credentials of every URL (userinfo, query values, fragment: see :func:`kai_bridge.urls.redact_url`)."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, _MASK)
    text = redact_urls(text)
    for pattern in _PATTERNS:
        if pattern.groups and pattern.pattern.startswith("(?i)("):
            text = pattern.sub(lambda m: m.group(1) + _MASK, text)
        else:
            text = pattern.sub(_MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Renders each record's message and exception now, scrubbed, so no handler sees a secret."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message, self._secrets)
        record.args = None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted, self._secrets)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and exception text when present."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False)


_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(
    *,
    level: str = "INFO",
    json_format: bool = False,
    log_dir: Path | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
) -> list[str]:
    """Install handlers on the root logger; returns warnings that could not be logged yet."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    formatter: logging.Formatter = JsonFormatter() if json_format else logging.Formatter(_TEXT_FORMAT)
    redactor = RedactingFilter(secrets)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    problems: list[str] = []
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            main_file = logging.handlers.RotatingFileHandler(
                log_dir / "coze_integration.log", maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            error_file = logging.handlers.RotatingFileHandler(
                log_dir / "error.log", maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            error_file.setLevel(logging.ERROR)
            handlers += [main_file, error_file]
        except OSError as exc:
            problems.append(f"cannot write logs to {log_dir} ({exc.strerror or exc}); logging to stderr only")
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redactor)
        root.addHandler(handler)
    # Noisy libraries: their request lines carry no secrets but drown ours at INFO.
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return problems
