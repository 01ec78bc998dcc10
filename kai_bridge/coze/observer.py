"""What the Coze pipeline tells an observer about each request attempt (metrics, traces).

The Coze package knows no metrics library: it calls a :class:`CozeObserver` if one is
attached (:meth:`kai_bridge.coze.CozeClient.observe`) and the composition root connects it
to whatever records. One attempt is one pass through breaker, token and HTTP: a call that is
retried twice is three attempts, each with its own :class:`CozeOutcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from kai_bridge.errors import CircuitOpenError, CozeAPIError, CozeError, CozeTransportError

__all__ = ["CODE_OK", "CozeObserver", "CozeOutcome", "OutcomeSink", "outcome_code"]

#: The ``code`` of an attempt Coze answered with code 0.
CODE_OK: Final = "0"


@dataclass(frozen=True, slots=True)
class CozeOutcome:
    """How one attempt ended. ``code`` is bounded: Coze's own code, or a word for what stood in its way."""

    code: str
    logid: str | None
    error: BaseException | None  # None on success


OutcomeSink = Callable[[CozeOutcome], None]


class CozeObserver(Protocol):
    """``request_started`` runs before an attempt; the callback it returns, once, when the attempt ends."""

    def request_started(self, *, endpoint: str) -> OutcomeSink: ...


def outcome_code(error: BaseException | None) -> str:
    """Coze's code (``"0"``, ``"4100"``, ``"5000"``...), else ``circuit_open``, ``transport``, ``http_<status>``,
    ``error`` (a Coze error with nothing more), ``cancelled`` or ``internal``."""
    if error is None:
        return CODE_OK
    if isinstance(error, CozeAPIError):
        if error.code is not None:
            return str(error.code)
        return f"http_{error.http_status}" if error.http_status else "error"
    if isinstance(error, CircuitOpenError):
        return "circuit_open"
    if isinstance(error, CozeTransportError):
        return "transport"
    if isinstance(error, CozeError):
        return "error"
    if isinstance(error, Exception):
        return "internal"
    return "cancelled"
