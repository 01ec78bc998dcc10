"""Optional OpenTelemetry traces: a span per tool call, per Coze request attempt, per webhook dispatch.

Off unless asked for: with no OTLP endpoint and no exporter handed in, :class:`Tracing` is
disabled and costs one attribute check per call (the SDK is not even imported). On, it owns
its own ``TracerProvider`` (not the process-global one: one per runtime, closed with it) and
sends spans over OTLP/HTTP to ``<endpoint>/v1/traces`` in batches, or to an exporter a test
hands in (the SDK's in-memory one). The SDK comes with the ``otel`` extra
(``pip install 'kai-bridge[otel]'``); asking for traces without it is a ConfigError.

Spans nest: a Coze request made while a tool runs is a child of the tool's span. Attributes
are the metrics' bounded labels plus the Coze ``logid`` (``coze.logid``), so a slow span
leads straight to Coze support. The endpoint is read by ``config.py`` like every setting;
the SDK itself still reads its own standard variables (sampler, span limits, the exporter's
headers and certificates) where they are set.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Final

import anyio

from kai_bridge.errors import ConfigError, KaiBridgeError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

__all__ = ["SpanEnd", "Tracing", "open_tracing", "traces_url"]

Attributes = Mapping[str, str | int | float | bool]
#: Ends a span: extra attributes, and the error that failed it (None: it succeeded).
SpanEnd = Callable[[Attributes, BaseException | None], None]

_INSTALL_HINT: Final = "install the tracing extra: pip install 'kai-bridge[otel]'"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (``http://collector:4318`` -> ``.../v1/traces``)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class Tracing:
    """Starts spans when enabled; see the module docstring."""

    def __init__(self, tracer: Tracer | None = None) -> None:
        self._tracer = tracer
        if tracer is not None:
            from opentelemetry import context, trace
            from opentelemetry.trace import Status, StatusCode

            self._attach, self._detach, self._in_context = context.attach, context.detach, trace.set_span_in_context
            self._status, self._error = Status, StatusCode.ERROR

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start(self, name: str, attributes: Attributes) -> SpanEnd | None:
        """Start span ``name`` as the current one; None when tracing is off. Call the result once, in the same task."""
        tracer = self._tracer
        if tracer is None:
            return None
        span = tracer.start_span(name, attributes=dict(attributes))
        token = self._attach(self._in_context(span))

        def end(extra: Attributes, error: BaseException | None) -> None:
            try:
                if extra:
                    span.set_attributes(dict(extra))
                if error is not None:
                    # The package's own messages are safe to show; anything else only by type.
                    shown = str(error) if isinstance(error, KaiBridgeError) else type(error).__name__
                    span.set_status(self._status(self._error, shown))
                    span.set_attribute("error.type", type(error).__name__)
            finally:
                self._detach(token)
                span.end()

        return end

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[None]:
        """A span around a block (ended with the block's exception, if any)."""
        end = self.start(name, attributes)
        if end is None:
            yield
            return
        try:
            yield
        except BaseException as exc:
            end({}, exc)
            raise
        end({}, None)


@contextlib.asynccontextmanager
async def open_tracing(
    *, otlp_endpoint: str, service_name: str, version: str, exporter: SpanExporter | None = None
) -> AsyncIterator[Tracing]:
    """Tracing for one runtime: disabled without an endpoint or exporter; flushed and closed on exit.

    The flush runs on a worker thread: the exporter's HTTP request is blocking, and the event loop
    must keep serving meanwhile (the collector may even be in this process, as in the tests).
    """
    if not otlp_endpoint and exporter is None:
        yield Tracing(None)
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise ConfigError(f"traces are asked for (an OTLP endpoint is set) but OpenTelemetry is missing: "
                          f"{_INSTALL_HINT}") from None
    # Resource(...) rather than Resource.create(): the latter reads OTEL_* variables itself.
    provider = TracerProvider(resource=Resource({"service.name": service_name, "service.version": version}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            provider.shutdown()
            raise ConfigError(f"an OTLP endpoint is set but the OTLP exporter is missing: {_INSTALL_HINT}") from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(otlp_endpoint))))
    try:
        yield Tracing(provider.get_tracer("kai_bridge", version))
    finally:
        with anyio.CancelScope(shield=True):  # flushed even when the runtime closes on a cancellation
            await anyio.to_thread.run_sync(provider.shutdown)
