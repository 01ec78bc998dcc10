"""Logging set-up: stderr plus rotating files, optional JSON, and a filter that scrubs secrets.

The filter sits on every handler, so it scrubs the records of every logger (the MCP SDK's,
httpx's, uvicorn's) alike: known secret values, token shapes, and the credentials inside
any URL (``http://user:pw@host`` is written ``http://user:***@host``).

Configured once, by the CLI's ``main()``. stdout is never used: in ``kai-bridge stdio`` it
is the MCP wire. The seed guide's files are kept: ``<log_dir>/coze_integration.log`` (all
records at the configured level) and ``<log_dir>/error.log`` (ERROR and above).

Correlation fields (:data:`CORRELATION_FIELDS`: the Coze ``logid``, ``chat_id``, ``tool``,
``door``) ride a context variable: :func:`log_fields` opens a scope (the tool registry opens
one per call), :func:`note_log_fields` fills in what becomes known inside it (the Coze
pipeline notes the logid, the conversation service the chat id). Every line logged inside
the scope carries them: as fields of the JSON object, or as ``[k=v ...]`` after a text line.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Final, TextIO

from kai_bridge.urls import redact_urls

__all__ = [
    "CORRELATION_FIELDS",
    "CorrelationFilter",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "current_log_fields",
    "log_fields",
    "note_log_fields",
    "redact",
]

#: The request correlation fields a log line may carry, in the order they are shown.
CORRELATION_FIELDS: Final = ("door", "tool", "chat_id", "logid")
_NO_FIELDS: Final[Mapping[str, str]] = {}
# An immutable mapping per scope; None outside any scope (so notes made there go nowhere).
_fields: ContextVar[Mapping[str, str] | None] = ContextVar("kai_bridge_log_fields", default=None)


def _merged(base: Mapping[str, str], *, door: str | None, tool: str | None, chat_id: str | None,
            logid: str | None) -> dict[str, str]:
    merged = dict(base)
    for name, value in (("door", door), ("tool", tool), ("chat_id", chat_id), ("logid", logid)):
        if value:
            merged[name] = value
    return merged


@contextmanager
def log_fields(
    *, door: str | None = None, tool: str | None = None, chat_id: str | None = None, logid: str | None = None
) -> Iterator[None]:
    """A scope whose log lines carry these fields (inherited from an enclosing scope, then these)."""
    token = _fields.set(_merged(_fields.get() or _NO_FIELDS, door=door, tool=tool, chat_id=chat_id, logid=logid))
    try:
        yield
    finally:
        _fields.reset(token)


def note_log_fields(*, chat_id: str | None = None, logid: str | None = None) -> None:
    """Add what became known (a chat id, the latest Coze logid) to the current scope; no-op outside one."""
    current = _fields.get()
    if current is not None and (chat_id or logid):
        _fields.set(_merged(current, door=None, tool=None, chat_id=chat_id, logid=logid))


def current_log_fields() -> Mapping[str, str]:
    """The correlation fields of the current scope (empty outside one)."""
    return _fields.get() or _NO_FIELDS


class CorrelationFilter(logging.Filter):
    """Copies the current correlation fields onto each record (``record.kai_fields``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "kai_fields"):
            record.kai_fields = dict(_fields.get() or _NO_FIELDS)
        return True


def _fields_of(record: logging.LogRecord) -> Mapping[str, str]:
    found = getattr(record, "kai_fields", None)
    return found if isinstance(found, dict) else _NO_FIELDS

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
    """One JSON object per line: ts, level, logger, message, the correlation fields, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = _fields_of(record)
        for name in CORRELATION_FIELDS:
            if name in fields:
                payload[name] = fields[name]
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False)


_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """The plain line, then ``[door=... tool=... chat_id=... logid=...]`` when the record has fields."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = _fields_of(record)
        if not fields:
            return line
        shown = " ".join(f"{name}={fields[name]}" for name in CORRELATION_FIELDS if name in fields)
        return f"{line} [{shown}]"


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
    formatter: logging.Formatter = JsonFormatter() if json_format else TextFormatter()
    redactor = RedactingFilter(secrets)
    correlation = CorrelationFilter()
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
        handler.addFilter(correlation)
        handler.addFilter(redactor)
        root.addHandler(handler)
    # Noisy libraries: their request lines carry no secrets but drown ours at INFO.
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return problems
