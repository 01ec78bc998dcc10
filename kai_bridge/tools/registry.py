"""The one tool registry: every door (MCP, Coze plugin face, CLI, requires_action) calls through it.

A :class:`Tool` is declared once: name, description, input/output JSON Schema, annotations
and an async handler that knows nothing of the door calling it. :meth:`ToolRegistry.call`
validates the arguments, enforces the timeout and turns every failure into a
:class:`~kai_bridge.errors.ToolError` whose message is safe to show a model.

Two kinds of tools live here: *typed* tools built with :func:`typed_tool` (pydantic models
validate the input and shape the output) and *raw-schema* tools (for example those proxied
from upstream KAI MCP servers) whose arguments are validated with ``jsonschema``.

Every call is observed here, once for all doors: the :class:`ToolContext` says which
:class:`Door` it came through, a :class:`ToolCallObserver` (the root hands in the metrics
and traces) hears its start and its :class:`ToolOutcome`, its log lines carry ``tool`` and
``door`` (:func:`kai_bridge.logs.log_fields`), and a failure is logged at WARNING (the
caller's mistake, or Coze failing fast behind an open breaker) or ERROR (the rest).
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

import anyio
import jsonschema  # type: ignore[import-untyped]  # no stubs installed; used through Any
import jsonschema.exceptions  # type: ignore[import-untyped]
import jsonschema.validators  # type: ignore[import-untyped]
from pydantic import BaseModel, ValidationError

from kai_bridge.errors import CircuitOpenError, KaiBridgeError, ToolError, ToolInputError, ToolNotFoundError
from kai_bridge.logs import log_fields

__all__ = [
    "UNKNOWN_TOOL",
    "CallFinished",
    "Caller",
    "CozeCaller",
    "Door",
    "NullToolContext",
    "Tool",
    "ToolAnnotations",
    "ToolCallObserver",
    "ToolContext",
    "ToolHandler",
    "ToolOutcome",
    "ToolRegistry",
    "inline_refs",
    "typed_tool",
    "validate_tool_name",
]

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_MAX_ERRORS_SHOWN = 5

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)


def validate_tool_name(name: str) -> str:
    """Return ``name`` if it is a valid MCP tool name (1..128 of ``[A-Za-z0-9_.-]``), else raise ValueError."""
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid tool name {name!r}: use 1..128 characters of A-Z a-z 0-9 _ . -")
    return name


@dataclass(frozen=True, slots=True)
class ToolAnnotations:
    """Behaviour hints shown to clients (MCP ``readOnlyHint`` etc.)."""

    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    title: str | None = None


class Door(StrEnum):
    """The way a call came in: a label of the tool metrics and log lines (bounded, so a door is added here).

    A door sets it on the :class:`ToolContext` it hands to :meth:`ToolRegistry.call`
    (``NullToolContext(door=Door.PLUGIN)``, or ``door = Door.X`` on a subclass).
    """

    MCP_STDIO = "mcp-stdio"  # kai-bridge stdio
    MCP_HTTP = "mcp-http"  # /mcp, Streamable HTTP
    PLUGIN = "plugin"  # the Coze plugin HTTP face
    CLI = "cli"  # kai-bridge call
    REQUIRES_ACTION = "requires_action"  # a Coze chat paused for a local plugin
    EVENT_ROUTE = "event-route"  # a webhook event routed to a tool
    OTHER = "other"  # a context that did not say (tests, embedding code)


class ToolOutcome(StrEnum):
    """How a call ended (a metrics label, bounded)."""

    OK = "ok"
    INPUT_ERROR = "input_error"  # the arguments were refused
    NOT_FOUND = "not_found"  # no such tool
    TIMEOUT = "timeout"
    ERROR = "error"  # the tool (or what it called: Coze, an upstream) failed
    INTERNAL_ERROR = "internal_error"  # a bug: an unexpected exception or a malformed result
    CANCELLED = "cancelled"  # the caller went away


#: The ``tool`` label of a call to a name that is not registered (names from callers are unbounded).
UNKNOWN_TOOL = "(unknown)"

CallFinished = Callable[[ToolOutcome, ToolError | None], None]


class ToolCallObserver(Protocol):
    """Hears every call: ``call_started`` runs before the handler, the callback it returns after it."""

    def call_started(self, *, tool: str, door: Door) -> CallFinished: ...


@dataclass(frozen=True, slots=True)
class CozeCaller:
    """What Coze says about a plugin call in its request headers (all optional, all strings).

    ``user_id`` is ``X-Aiplugin-Connector-Identifier``: the ``user_id`` the API caller gave
    Coze, i.e. the end user the bot is serving. ``logid`` is ``X-Tt-Logid`` (for Coze support).
    """

    user_id: str | None = None
    bot_id: str | None = None
    conversation_id: str | None = None
    logid: str | None = None
    plugin_id: str | None = None
    account_id: str | None = None
    open_id: str | None = None
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling a tool, as far as the door knows.

    ``door`` is the :class:`Door` it came in by (the metrics and log label); ``id`` is
    a stable identity for per-caller state such as the current conversation (None: unknown);
    ``coze`` is set when Coze made the call (the plugin face).
    """

    door: Door
    id: str | None = None
    coze: CozeCaller | None = None

    def describe(self) -> str:
        """A one-line, secret-free description for logs."""
        text = f"{self.door}:{self.id or '-'}"
        coze = self.coze
        if coze is not None:
            text += f" (coze bot {coze.bot_id or '-'}, conversation {coze.conversation_id or '-'}, logid {coze.logid or '-'})"
        return text


UNKNOWN_CALLER: Final = Caller(door=Door.OTHER)


class ToolContext:
    """What a handler may use from the door that called it: progress, logs, who is calling, which door.

    The base class does nothing; doors subclass it (the MCP door forwards progress and
    logs as notifications). Handlers must work with any context, including
    :class:`NullToolContext`.
    """

    caller_id: str | None = None
    caller: Caller = UNKNOWN_CALLER
    #: Names this call across repeats of it (a webhook event dispatched again): a tool with an effect
    #: upstream may use it to have that effect once. None: every call is new.
    idempotency_key: str | None = None

    @property
    def door(self) -> Door:
        """The door of the call (the caller's): what the metrics and log lines are labelled with."""
        return self.caller.door

    @property
    def can_report(self) -> bool:
        """Whether :meth:`report_progress` or :meth:`log` may reach the caller at all.

        True unless the door knows it has nowhere to send them; a tool may then skip
        preparing progress (the answer is the same either way).
        """
        return True

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress of the current call; a no-op where the door has nowhere to send it."""
        return None

    async def log(self, level: str, message: str) -> None:
        """Send a log line to the caller; a no-op where the door has nowhere to send it."""
        return None

    def offer_poll(self, arguments: dict[str, Any]) -> None:
        """A long tool says, once it knows, which arguments of its ``poll_with`` tool fetch its result.

        Doors that cannot wait for the end (the Coze plugin face) answer with this handle
        while the call goes on; the others ignore it.
        """
        return None


class NullToolContext(ToolContext):
    """A context for doors with no back-channel (CLI, Coze plugin face, requires_action)."""

    def __init__(
        self,
        *,
        caller_id: str | None = None,
        door: Door = Door.OTHER,
        caller: Caller | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        self.caller = caller if caller is not None else Caller(door=door, id=caller_id)
        self.caller_id = caller_id if caller_id is not None else self.caller.id
        self.idempotency_key = idempotency_key

    @property
    def can_report(self) -> bool:
        return False


ToolHandler = Callable[[dict[str, Any], ToolContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool, declared once.

    ``handler`` receives validated arguments and returns a JSON-able ``dict`` (the MCP
    ``structuredContent``). ``timeout`` (seconds) overrides the registry's default; the
    registry enforces it. ``input_model`` is set by :func:`typed_tool`: such tools
    validate their own input with pydantic; other tools are validated against
    ``input_schema`` with jsonschema. ``poll_with`` names the tool that fetches this
    tool's result later (see :meth:`ToolContext.offer_poll`), for tools that may run
    longer than a door can keep a request open.
    """

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    annotations: ToolAnnotations
    handler: ToolHandler
    timeout: float | None = None
    input_model: type[BaseModel] | None = field(default=None, repr=False)
    poll_with: str | None = None

    def __post_init__(self) -> None:
        validate_tool_name(self.name)
        if self.input_schema.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: input_schema must be a JSON Schema of type 'object'")
        if self.timeout is not None and not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"tool {self.name!r}: timeout must be a positive number of seconds")


def _format_location(loc: tuple[int | str, ...] | list[int | str]) -> str:
    return ".".join(str(part) for part in loc) if loc else "(arguments)"


def _pydantic_error_message(tool: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        problems.append(f"'{_format_location(err['loc'])}': {err['msg']}")
    return _input_error_text(tool, problems)


def _input_error_text(tool: str, problems: list[str]) -> str:
    shown = problems[:_MAX_ERRORS_SHOWN]
    more = len(problems) - len(shown)
    text = f"invalid arguments for tool '{tool}': " + "; ".join(shown)
    if more > 0:
        text += f" (and {more} more)"
    return text


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with local ``#/$defs/...`` references replaced by their definitions.

    Pydantic emits ``$defs`` + ``$ref`` for nested models. Inlined schemas validate several
    times faster (every MCP client re-validates structured results against the output
    schema) and suit clients that handle ``$ref`` poorly. A recursive schema cannot be
    inlined and is returned unchanged.
    """
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        return schema

    class _Recursive(Exception):
        pass

    def resolve(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in stack or name not in defs:
                raise _Recursive
            target = resolve(defs[name], (*stack, name))
            siblings = {k: resolve(v, stack) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings}
        return {k: resolve(v, stack) for k, v in node.items() if k != "$defs"}

    try:
        inlined = resolve(schema, ())
    except _Recursive:
        return schema
    return inlined  # type: ignore[no-any-return]


def typed_tool(
    *,
    name: str,
    title: str,
    description: str,
    input_model: type[InT],
    output_model: type[OutT],
    annotations: ToolAnnotations,
    func: Callable[[InT, ToolContext], Awaitable[OutT]],
    timeout: float | None = None,
    poll_with: str | None = None,
) -> Tool:
    """Declare a tool from a pydantic input model, a pydantic output model and an async function."""

    async def handler(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        try:
            params = input_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolInputError(_pydantic_error_message(name, exc)) from None
        result = await func(params, ctx)
        return result.model_dump(mode="json", by_alias=True)

    return Tool(
        name=name,
        title=title,
        description=description,
        input_schema=inline_refs(input_model.model_json_schema(by_alias=True)),
        output_schema=inline_refs(output_model.model_json_schema(by_alias=True, mode="serialization")),
        annotations=annotations,
        handler=handler,
        timeout=timeout,
        input_model=input_model,
        poll_with=poll_with,
    )


_Validator = Any  # jsonschema's validator classes are not typed precisely enough to name here


class ToolRegistry:
    """The set of tools every door serves. Order of :meth:`list` is by name (deterministic)."""

    def __init__(self, *, default_timeout: float | None = 30.0, observer: ToolCallObserver | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, _Validator] = {}
        self._ordered: list[Tool] | None = None
        self._subscribers: list[Callable[[], None]] = []
        self.default_timeout = default_timeout
        self.observer = observer

    # ---- the set of tools ------------------------------------------------------------------
    def add(self, tool: Tool, *, replace: bool = False) -> None:
        """Register ``tool``. A second tool of the same name is refused unless ``replace``."""
        if tool.name in self._tools and not replace:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        validator: _Validator = None
        if tool.input_model is None:
            try:
                cls = jsonschema.validators.validator_for(tool.input_schema, default=jsonschema.Draft202012Validator)
                cls.check_schema(tool.input_schema)
            except jsonschema.exceptions.SchemaError as exc:
                raise ValueError(f"tool {tool.name!r}: input_schema is not a valid JSON Schema: {exc.message}") from None
            validator = cls(tool.input_schema)
        self._tools[tool.name] = tool
        self._validators[tool.name] = validator
        self._changed()

    def remove(self, name: str) -> None:
        """Unregister the tool ``name`` (raises ToolNotFoundError if there is none)."""
        if name not in self._tools:
            raise ToolNotFoundError(f"unknown tool '{name}'")
        del self._tools[name]
        self._validators.pop(name, None)
        self._changed()

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolNotFoundError(self._not_found_message(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def list(self) -> list[Tool]:
        """All tools, sorted by name."""
        if self._ordered is None:
            self._ordered = [self._tools[name] for name in sorted(self._tools)]
        return list(self._ordered)

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a tool is added or removed."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def _changed(self) -> None:
        self._ordered = None
        for callback in list(self._subscribers):
            try:
                callback()
            except Exception:
                logger.exception("tool registry subscriber %r failed", callback)

    def _not_found_message(self, name: str) -> str:
        names = sorted(self._tools)
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        return f"unknown tool '{name}'" + (f"; available tools: {listed}" if names else "; no tools are registered")

    # ---- calling ---------------------------------------------------------------------------
    def validate_arguments(self, name: str, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check ``arguments`` against a raw-schema tool's input schema; return them as a dict."""
        tool = self.get(name)
        args = self._as_dict(name, arguments)
        validator = self._validators.get(name)
        if tool.input_model is None and validator is not None:
            errors = sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path))
            if errors:
                problems = [f"'{_format_location(list(e.absolute_path))}': {e.message}" for e in errors]
                raise ToolInputError(_input_error_text(name, problems))
        return args

    @staticmethod
    def _as_dict(name: str, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        if arguments is None:
            return {}
        if not isinstance(arguments, Mapping):
            raise ToolInputError(f"invalid arguments for tool '{name}': arguments must be a JSON object")
        return dict(arguments)

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        ctx: ToolContext | None = None,
    ) -> dict[str, Any]:
        """Run tool ``name`` with ``arguments`` and return its structured result.

        Raises ToolNotFoundError, ToolInputError (names the field and the problem), or
        another ToolError (timeout, the tool's own error, or a safe message standing for an
        unexpected failure, which is logged with its traceback). Cancellation propagates.
        """
        context = ctx if ctx is not None else NullToolContext()
        door = context.door
        label = name if name in self._tools else UNKNOWN_TOOL
        finished = self.observer.call_started(tool=label, door=door) if self.observer is not None else None
        outcome = ToolOutcome.CANCELLED
        failure: ToolError | None = None
        with log_fields(door=door.value, tool=label):
            try:
                result = await self._run(name, arguments, context)
                outcome = ToolOutcome.OK
                return result
            except ToolError as exc:
                failure = exc
                outcome = _outcome_of(exc)
                _log_failure(exc, outcome, name=label)
                raise
            finally:
                if finished is not None:
                    finished(outcome, failure)

    async def _run(self, name: str, arguments: Mapping[str, Any] | None, context: ToolContext) -> dict[str, Any]:
        tool = self.get(name)
        args = self.validate_arguments(name, arguments)
        timeout = tool.timeout if tool.timeout is not None else self.default_timeout
        try:
            if timeout is None:
                result = await tool.handler(args, context)
            else:
                with anyio.move_on_after(timeout) as scope:
                    result = await tool.handler(args, context)
                if scope.cancelled_caught:
                    raise _ToolTimeout(f"tool '{name}' timed out after {timeout:g} s")
        except ToolError:
            raise
        except KaiBridgeError as exc:
            # Messages of the package's own errors are safe to show (no secrets, with logid).
            raise ToolError(f"tool '{name}' failed: {exc}") from exc
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            logger.error("tool %r raised an unexpected error (error id %s)", name, error_id, exc_info=True)
            raise _ToolInternalError(
                f"tool '{name}' failed with an internal error (error id {error_id}); the server log has details"
            ) from exc
        if not isinstance(result, dict):
            error_id = uuid.uuid4().hex[:12]
            logger.error("tool %r returned %s, not a dict (error id %s)", name, type(result).__name__, error_id)
            raise _ToolInternalError(f"tool '{name}' returned a malformed result (error id {error_id})")
        return result


class _ToolTimeout(ToolError):
    """The registry's own timeout (a plain ToolError to callers; an outcome of its own here)."""


class _ToolInternalError(ToolError):
    """A bug in a tool, already logged with its traceback where it was caught."""


def _outcome_of(exc: ToolError) -> ToolOutcome:
    if isinstance(exc, ToolNotFoundError):
        return ToolOutcome.NOT_FOUND
    if isinstance(exc, ToolInputError):
        return ToolOutcome.INPUT_ERROR
    if isinstance(exc, _ToolTimeout):
        return ToolOutcome.TIMEOUT
    if isinstance(exc, _ToolInternalError):
        return ToolOutcome.INTERNAL_ERROR
    return ToolOutcome.ERROR


def _log_failure(exc: ToolError, outcome: ToolOutcome, *, name: str) -> None:
    if outcome is ToolOutcome.INTERNAL_ERROR:
        return  # logged with its traceback where it happened
    # The caller's mistake, or a fast failure behind an open Coze breaker (whose opening was
    # logged once at ERROR), is a warning; the rest is an error an operator should see.
    caller_side = outcome in (ToolOutcome.INPUT_ERROR, ToolOutcome.NOT_FOUND)
    level = logging.WARNING if caller_side or _caused_by_open_breaker(exc) else logging.ERROR
    logger.log(level, "tool call %s failed (%s): %s", name, outcome.value, exc)


def _caused_by_open_breaker(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # a cause chain is short; bounded in case one is circular
        if seen is None:
            return False
        if isinstance(seen, CircuitOpenError):
            return True
        seen = seen.__cause__
    return False
