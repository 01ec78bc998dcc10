"""The user's acceptance figures, measured end to end on this machine against real processes.

    .venv/bin/python scripts/bench/bench_acceptance.py [--sessions 16] [--seconds 10] [--check]

The guide's table (验收标准) asks: API success >= 99 % over 100 consecutive calls, average
response <= 2 s, >= 50 QPS, error recovery <= 30 s in a fault-injection test. This script
starts, as subprocesses and with a key pair generated for the run:

- ``kai-bridge sandbox`` (the Coze-compatible API, admin routes on behind a random token),
- ``kai-bridge serve`` configured by environment for JWT OAuth against that sandbox (its
  own data and log directories, every other setting at its default),
- ``scripts/bench/bare_mcp_server.py http`` (a bare MCP SDK server with a no-op tool),

and drives them with the official MCP SDK client (``ClientSession`` over Streamable HTTP,
one ``httpx2`` client per session, as separate MCP clients would) and with ``cozepy``'s
``AsyncCoze`` directly against the same sandbox as the baseline. Then:

1. success and 2. response time: 100 consecutive ``send_message`` calls (interleaved with
   100 cozepy ``chat.stream`` calls) and 100 ``coffee_knowledge_query`` calls (interleaved
   with 100 bare no-op calls), each from a fresh session, cold server included;
3. throughput: K concurrent sessions calling one tool in a loop for S seconds, per tool,
   and the same load on cozepy and on the bare server;
4. recovery: a trickle of ``send_message`` calls while every chat route of the sandbox
   fails (half 5xx, half dropped connections) for at least ``--fault-seconds``; the time
   from clearing the fault to the first success and to sustained success, and how calls
   failed meanwhile. By default the fault is cleared just after the bridge's circuit
   breaker let a half-open probe through and it failed: the worst moment (recovery then
   takes the whole ``coze_breaker_reset``, left at its default unless ``--breaker-reset``).

The sandbox answers without pacing (``--chunk-delay-ms 0`` by default), so the response
times are what the bridge, the sandbox and the client cost on this machine; a real Coze adds
the model's own time on top, the same for the bridge and for cozepy. With pacing (20 ms a
chunk, 0.4-1.9 s a chat; the sandbox's default is 30 ms) chat throughput is chats in flight
divided by chat time, for cozepy as for the bridge: on a 2-core box 32 sessions gave 32 vs
38 chats/s (cozepy), 64 gave 49 vs 45. Everything talks to 127.0.0.1 only, every loop is
bounded in count and time. Prints Markdown; about 80 s unpaced.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from kai_bridge.keys import KeyPair, generate_key_pair

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # one way of stopping a child process, shared with the tests
from tests.bridge import stop_process  # noqa: E402

PY = sys.executable
CLI = [PY, "-m", "kai_bridge.cli"]
BARE = [PY, str(REPO / "scripts" / "bench" / "bare_mcp_server.py")]
BOT_ID = "7390000000000000001"  # the sandbox's Coffee Expert
OUR_APP = "acceptance-bridge"
COZEPY_APP = "acceptance-cozepy"
QUESTIONS = [
    "What is espresso?", "埃塞俄比亚咖啡有什么特点", "espresso extraction time", "how to store coffee beans",
    "Kenya SL28 flavour", "什么是日晒处理", "pour over ratio", "cold brew strength", "Geisha variety origin",
    "caffeine in robusta vs arabica", "哥伦比亚咖啡产区", "what does light roast taste like", "milk steaming temperature",
    "cupping protocol", "Yemen mocha history", "grind size for french press",
]
BREAKER_TEXT = "Coze is unavailable"  # the open breaker's message (kai_bridge/coze/breaker.py)


# ---- numbers -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outcome:
    """One call: when it started and ended (perf_counter seconds), and the error text if it failed."""

    start: float
    end: float
    ok: bool
    error: str = ""

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): p99 of 100 samples is the 99th smallest."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    label: str
    count: int
    ok: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    first_error: str

    @classmethod
    def of(cls, label: str, outcomes: Sequence[Outcome]) -> Summary:
        ms = [o.ms for o in outcomes]
        errors = [o.error for o in outcomes if not o.ok]
        return cls(label, len(outcomes), len(outcomes) - len(errors), statistics.fmean(ms) if ms else math.nan,
                   percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), max(ms, default=math.nan),
                   errors[0] if errors else "")

    @property
    def success(self) -> float:
        return self.ok / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class Load:
    label: str
    sessions: int
    elapsed_s: float
    outcomes: list[Outcome]
    cpu: dict[str, float]  # process name -> CPU seconds spent during the run

    @property
    def ok(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class FailureClass:
    example: str  # the first error text of this kind (numbers aside)
    under_fault: int  # calls that started while the fault was on
    after_clear: int  # calls that started after it was cleared (the breaker may still be open)
    p50_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class Recovery:
    detect_s: float | None  # fault injected -> first failed call ended
    first_ok_s: float | None  # fault cleared -> first successful call ended
    sustained_s: float | None  # fault cleared -> first call of the success run that lasted to the end
    calls_under_fault: int
    failed_under_fault: int
    classes: list[FailureClass]


def _class_key(text: str) -> str:
    """Errors of one kind differ only in numbers and logids."""
    return re.sub(r"\d+(\.\d+)?", "#", re.sub(r"logid=\w+", "logid=", text))


def analyse_recovery(outcomes: Sequence[Outcome], *, injected: float, cleared: float, settle: int) -> Recovery:
    """Times from the fault's start and end to failure, first success and sustained success.

    Sustained success starts at the first call after which every call succeeded, provided
    that run is at least ``settle`` calls long (shorter, and recovery is not proven: None).
    """
    ordered = sorted(outcomes, key=lambda o: o.start)
    detect = next((o.end - injected for o in ordered if o.start >= injected and not o.ok), None)
    after = [o for o in ordered if o.end > cleared]
    first_ok = next((o.end - cleared for o in after if o.ok), None)
    sustained: float | None = None
    run_start: Outcome | None = None
    run = 0
    for o in after:
        if o.ok:
            run_start = run_start or o
            run += 1
        else:
            run_start, run = None, 0
    if run_start is not None and run >= settle:
        sustained = run_start.end - cleared
    under = [o for o in ordered if o.start >= injected and o.end <= cleared]
    groups: dict[str, list[Outcome]] = {}
    for o in ordered:
        if not o.ok and o.start >= injected:
            groups.setdefault(_class_key(o.error), []).append(o)
    classes = [
        FailureClass(group[0].error, sum(o.start < cleared for o in group), sum(o.start >= cleared for o in group),
                     percentile([o.ms for o in group], 50), max(o.ms for o in group))
        for group in sorted(groups.values(), key=len, reverse=True)
    ]
    return Recovery(detect, first_ok, sustained, len(under), sum(not o.ok for o in under), classes)


# ---- processes ---------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    process: anyio.abc.Process
    log: Path

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.process.pid)


def cpu_seconds_of(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc); NaN where that is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_env(tmp: Path, name: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env.update({"KAI_BRIDGE_DATA_DIR": str(tmp / f"{name}-data"), "KAI_BRIDGE_LOG_DIR": str(tmp / f"{name}-logs"),
                "PYTHONPATH": str(REPO), **extra})
    return env


@contextlib.asynccontextmanager
async def started(name: str, command: list[str], env: dict[str, str], *, tmp: Path,
                  ready: Callable[[Path], str | None]) -> AsyncIterator[tuple[Proc, str]]:
    """Start a subprocess (stdout and stderr to a file), wait until ``ready`` finds its URL, stop it after."""
    log = tmp / f"{name}.log"
    with log.open("wb") as sink:
        process = await anyio.open_process(command, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    proc = Proc(name, process, log)
    try:
        with anyio.fail_after(60):
            while (url := ready(log)) is None:
                if process.returncode is not None:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited with {process.returncode} before it was ready:\n{tail}")
                await anyio.sleep(0.05)
        yield proc, url
    finally:
        await stop_process(process)


def sandbox_url_in(log: Path) -> str | None:
    found = re.search(r"Coze sandbox listening on (http://\S+)", log.read_text(errors="replace"))
    return found.group(1) if found else None


def file_text(path: Path) -> Callable[[Path], str | None]:
    def read(_log: Path) -> str | None:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        return text or None

    return read


# ---- clients -----------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def mcp_sessions(url: str, count: int, *, http_timeout: float = 60) -> AsyncIterator[list[ClientSession]]:
    """``count`` independent MCP clients (own HTTP client, own session) on one server."""
    async with contextlib.AsyncExitStack() as stack:
        sessions: list[ClientSession] = []
        for _ in range(count):
            http = await stack.enter_async_context(httpx2.AsyncClient(timeout=http_timeout))
            read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            sessions.append(session)
        yield sessions


def text_of(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


async def timed(fn: Callable[[], Awaitable[str | None]], *, limit_s: float) -> Outcome:
    """Run one call; ``fn`` returns None on success or the error text. Never raises (but cancellation)."""
    start = time.perf_counter()
    try:
        with anyio.fail_after(limit_s):
            error = await fn()
    except TimeoutError:
        error = f"no reply within {limit_s:.0f} s"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Outcome(start, time.perf_counter(), error is None, error or "")


ToolCall = Callable[[ClientSession, int], Awaitable[str | None]]


def on_sessions(tool: ToolCall, sessions: Sequence[ClientSession]) -> Callable[[int, int], Awaitable[str | None]]:
    """``fn(worker, i)`` for :func:`load`: worker ``w`` calls ``tool`` on its own session."""

    async def call(worker: int, i: int) -> str | None:
        return await tool(sessions[worker], i)

    return call


async def send_message(session: ClientSession, i: int) -> str | None:
    result = await session.call_tool("send_message", {"message": QUESTIONS[i % len(QUESTIONS)]})
    if result.is_error:
        return text_of(result)
    answer = (result.structured_content or {}).get("answer")
    return None if isinstance(answer, str) and answer else f"no answer in the result: {text_of(result)[:200]}"


async def knowledge_query(session: ClientSession, i: int) -> str | None:
    # A different question text each call (the suffix), so no call is answered from a cache.
    result = await session.call_tool("coffee_knowledge_query", {"query": f"{QUESTIONS[i % len(QUESTIONS)]} {i}"})
    return text_of(result) if result.is_error else None


async def bare_noop(session: ClientSession, i: int) -> str | None:
    result = await session.call_tool("noop", {"query": QUESTIONS[i % len(QUESTIONS)]})
    return text_of(result) if result.is_error else None


class CozepyChats:
    """cozepy ``AsyncCoze.chat.stream`` directly against the sandbox; one conversation per worker."""

    def __init__(self, coze: Any) -> None:
        from cozepy import ChatEventType, Message

        self._coze = coze
        self._delta, self._failed = ChatEventType.CONVERSATION_MESSAGE_DELTA, ChatEventType.CONVERSATION_CHAT_FAILED
        self._question = Message.build_user_question_text
        self._conversations: dict[int, str] = {}

    async def chat(self, worker: int, i: int) -> str | None:
        conversation = self._conversations.get(worker)
        if conversation is None:
            conversation = str((await self._coze.conversations.create(bot_id=BOT_ID)).id)
            self._conversations[worker] = conversation
        parts: list[str] = []
        failed: str | None = None
        stream = self._coze.chat.stream(bot_id=BOT_ID, user_id=f"cozepy-{worker}", conversation_id=conversation,
                                        additional_messages=[self._question(QUESTIONS[i % len(QUESTIONS)])])
        async for event in stream:
            if event.event == self._delta and event.message is not None:
                parts.append(event.message.content)
            elif event.event == self._failed:
                failed = f"chat failed: {event.chat.last_error}"
        return failed or (None if parts else "no answer streamed")


@contextlib.asynccontextmanager
async def cozepy_client(base_url: str, pair: KeyPair) -> AsyncIterator[CozepyChats]:
    # Imported here: authlib, under cozepy, prints a deprecation warning on import.
    from cozepy import AsyncCoze, AsyncHTTPClient, AsyncJWTAuth

    async with AsyncHTTPClient() as http:  # type: ignore[no-untyped-call]  # cozepy's own defaults
        auth = AsyncJWTAuth(client_id=COZEPY_APP, private_key=pair.private_pem.decode(), public_key_id=pair.kid,
                            ttl=900, base_url=base_url)
        yield CozepyChats(AsyncCoze(auth=auth, base_url=base_url, http_client=http))


# ---- phases ------------------------------------------------------------------------------------
async def sequential(paths: dict[str, Callable[[int], Awaitable[str | None]]], *, calls: int,
                     limit_s: float) -> dict[str, list[Outcome]]:
    """``calls`` consecutive calls on each path, interleaved path by path, nothing discarded."""
    outcomes: dict[str, list[Outcome]] = {name: [] for name in paths}
    for i in range(calls):
        for name, fn in paths.items():
            outcomes[name].append(await timed(functools.partial(fn, i), limit_s=limit_s))
    return outcomes


async def load(label: str, fn: Callable[[int, int], Awaitable[str | None]], *, workers: int, seconds: float,
               limit_s: float, procs: Sequence[Proc]) -> Load:
    """``workers`` loops calling ``fn(worker, i)`` back to back until ``seconds`` have passed."""
    for w in range(workers):  # one warm call per worker (session, conversation, pool) outside the window
        await timed(functools.partial(fn, w, 0), limit_s=limit_s)
    outcomes: list[Outcome] = []
    cpu_before = {p.name: p.cpu_seconds() for p in procs} | {"client": time.process_time()}
    began = time.perf_counter()
    deadline = began + seconds

    async def worker(w: int) -> None:
        i = 1
        while time.perf_counter() < deadline:
            outcomes.append(await timed(functools.partial(fn, w, i), limit_s=limit_s))
            i += 1

    async with anyio.create_task_group() as tg:
        for w in range(workers):
            tg.start_soon(worker, w)
    elapsed = time.perf_counter() - began
    cpu_after = {p.name: p.cpu_seconds() for p in procs} | {"client": time.process_time()}
    return Load(label, workers, elapsed, outcomes, {k: cpu_after[k] - cpu_before[k] for k in cpu_before})


@dataclass
class RecoveryRun:
    outcomes: list[Outcome]
    injected: float
    cleared: float
    rule: dict[str, Any]
    cleared_after_probe: bool
    breaker: dict[str, Any] = field(default_factory=dict)
    sandbox_faults: dict[str, Any] = field(default_factory=dict)


async def fault_run(session: ClientSession, *, sandbox: str, admin_token: str, bridge_health: str,
                    interval: float, healthy_s: float, fault_s: float, clear_on_probe: bool, settle: int,
                    max_wait_s: float, limit_s: float) -> RecoveryRun:
    """A ``send_message`` every ``interval`` s; the chat routes fail for ``fault_s``; wait for recovery.

    With ``clear_on_probe`` the fault is cleared, once ``fault_s`` has passed, right after the
    bridge's breaker let a half-open probe through and it failed: the breaker then stays open
    for its whole reset time, the worst case for recovery (clearing at an arbitrary moment
    lands anywhere in that window, and a run can look better than users may see).
    """
    rule: dict[str, Any] = {"route": "chat.*", "error_rate": 0.5, "drop_rate": 0.5}
    headers = {"Authorization": f"Bearer {admin_token}"}
    outcomes: list[Outcome] = []
    marks: dict[str, float] = {}
    probe_failed, recovered = anyio.Event(), anyio.Event()

    async def trickle() -> None:
        next_at = time.perf_counter()
        run = 0  # successes in a row since the fault was cleared
        breaker_open_seen = False
        for i in range(100_000):  # bounded; the task group is cancelled long before
            outcome = await timed(functools.partial(send_message, session, i), limit_s=limit_s)
            outcomes.append(outcome)
            if "injected" in marks and outcome.start >= marks["injected"] and not outcome.ok:
                if BREAKER_TEXT in outcome.error:
                    breaker_open_seen = True
                elif breaker_open_seen and outcome.end >= marks["injected"] + fault_s:
                    probe_failed.set()  # a call got past the open breaker (the probe) and failed
            if "cleared" in marks and outcome.end > marks["cleared"]:
                run = run + 1 if outcome.ok else 0
                if run >= settle:
                    recovered.set()
                    return
            next_at = max(next_at + interval, time.perf_counter())
            await anyio.sleep(max(0.0, next_at - time.perf_counter()))

    async with httpx.AsyncClient(timeout=10) as admin:
        async with anyio.create_task_group() as tg:
            tg.start_soon(trickle)
            await anyio.sleep(healthy_s)
            (await admin.post(f"{sandbox}/_sandbox/faults", json=rule, headers=headers)).raise_for_status()
            marks["injected"] = time.perf_counter()
            await anyio.sleep(fault_s)
            if clear_on_probe:
                with anyio.move_on_after(max_wait_s):
                    await probe_failed.wait()
            marks["cleared"] = time.perf_counter()  # before the DELETE: recovery counts from no later than this
            (await admin.delete(f"{sandbox}/_sandbox/faults", headers=headers)).raise_for_status()
            with anyio.move_on_after(max_wait_s):
                await recovered.wait()
            tg.cancel_scope.cancel()
        run = RecoveryRun(outcomes, marks["injected"], marks["cleared"], rule, probe_failed.is_set())
        diagnostics = (await admin.get(bridge_health.replace("/health", "/diagnostics/coze"))).json()
        run.breaker = dict(diagnostics.get("client", {}).get("breaker", {}))
        state = (await admin.get(f"{sandbox}/_sandbox/state", headers=headers)).json()
        run.sandbox_faults = dict(state.get("data", {}).get("faults_injected", {}))
    return run


# ---- report ------------------------------------------------------------------------------------
def verdict(passed: bool) -> str:
    return "**PASS**" if passed else "**FAIL**"


def fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


@dataclass
class Results:
    seq: dict[str, Summary]
    loads: list[Load]
    recovery: Recovery
    fault: RecoveryRun
    settings: dict[str, str]
    elapsed_s: float = 0.0


def acceptance_table(r: Results, *, seconds: float, sessions: int, settle: int, interval: float) -> tuple[str, bool]:
    send, query = r.seq["send_message"], r.seq["coffee_knowledge_query"]
    by_label = {load.label: load for load in r.loads}
    rows: list[tuple[str, str, str, bool]] = []
    for s in (send, query):
        rows.append((f"API success, {s.count} consecutive `{s.label}`", "≥ 99 %",
                     f"{s.ok}/{s.count} = {100 * s.success:.1f} %", s.success >= 0.99))
    for s in (send, query):
        rows.append((f"average response, `{s.label}`", "≤ 2 s", f"{s.mean_ms / 1000:.3f} s (mean of {s.count})",
                     s.mean_ms <= 2000))
    for name in ("send_message", "coffee_knowledge_query"):
        ld = by_label[f"kai-bridge {name}"]
        errors = len(ld.outcomes) - ld.ok
        rows.append((f"concurrency, `{name}` ({sessions} MCP sessions, {seconds:.0f} s)", "≥ 50 QPS",
                     f"{ld.rate:.0f} calls/s, {errors} errors", ld.rate >= 50 and errors == 0))
    rec = r.recovery
    rows.append(("error recovery, `send_message` (fault cleared → sustained success)", "≤ 30 s",
                 f"{fmt_s(rec.sustained_s)} (first success {fmt_s(rec.first_ok_s)})",
                 rec.sustained_s is not None and rec.sustained_s <= 30))
    out = ["## Acceptance (the guide's 验收标准), measured end to end", "",
           "| figure | target | measured | result |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {verdict(d)} |" for a, b, c, d in rows]
    all_pass = all(row[3] for row in rows)
    return "\n".join(out), all_pass


def details(r: Results, *, settle: int, interval: float) -> str:
    out = ["", "### Consecutive calls (one fresh MCP session per path, cold server; interleaved with the baseline)",
           "", "| path | calls | ok | mean ms | p50 ms | p90 ms | p99 ms | max ms | first error |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in r.seq.values():
        out.append(f"| {s.label} | {s.count} | {s.ok} | {s.mean_ms:.1f} | {s.p50_ms:.1f} | {s.p90_ms:.1f} "
                   f"| {s.p99_ms:.1f} | {s.max_ms:.1f} | {s.first_error[:120]} |")
    out += ["", "### Throughput (K concurrent clients, each calling back to back)", "",
            "| path | K | s | calls ok | errors | calls/s | p50 ms | p99 ms | CPU s: serve / sandbox / bare / client |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for ld in r.loads:
        ms = [o.ms for o in ld.outcomes]
        cpu = " / ".join(f"{ld.cpu.get(name, math.nan):.1f}" for name in ("serve", "sandbox", "bare", "client"))
        out.append(f"| {ld.label} | {ld.sessions} | {ld.elapsed_s:.1f} | {ld.ok} | {len(ld.outcomes) - ld.ok} "
                   f"| {ld.rate:.0f} | {percentile(ms, 50):.1f} | {percentile(ms, 99):.1f} | {cpu} |")
        if ld.ok < len(ld.outcomes):
            first = next(o.error for o in ld.outcomes if not o.ok)
            out.append(f"|  ↳ first error | | | | | | | | {first[:160]} |")
    rec, run = r.recovery, r.fault
    out += ["", "### Recovery (fault injection on the sandbox's chat routes)", "",
            f"- trickle: one `send_message` every {interval * 1000:.0f} ms from one MCP session; fault rule "
            f"`{run.rule}` for {run.cleared - run.injected:.1f} s, then `DELETE /_sandbox/faults` "
            + ("right after the breaker's half-open probe failed (the worst moment to recover)"
               if run.cleared_after_probe else "at a fixed time (no failed probe seen to align with)"),
            f"- first failure {fmt_s(rec.detect_s)} after the fault went on; "
            f"{rec.failed_under_fault}/{rec.calls_under_fault} calls made entirely under the fault failed",
            f"- after clearing: first success {fmt_s(rec.first_ok_s)}, sustained success ({settle}+ in a row to the "
            f"end) from {fmt_s(rec.sustained_s)}",
            f"- bridge breaker afterwards: {run.breaker}",
            f"- sandbox faults injected: {run.sandbox_faults}", "",
            "| what the model saw (tool error text, first of its kind) | calls under the fault | after clearing "
            "| p50 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for c in rec.classes:
        out.append(f"| `{c.example[:220]}` | {c.under_fault} | {c.after_clear} | {c.p50_ms:.1f} | {c.max_ms:.1f} |")
    out += ["", "- " + "; ".join(f"{k} {v}" for k, v in r.settings.items()),
            f"- wall time {r.elapsed_s:.0f} s, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
            f"load average at the end {os.getloadavg()[0]:.1f}"]
    return "\n".join(out)


# ---- main --------------------------------------------------------------------------------------
async def run(args: argparse.Namespace, tmp: Path) -> Results:
    began = time.perf_counter()
    bridge_pair, cozepy_pair = generate_key_pair(), generate_key_pair()
    (tmp / "bridge.pub").write_bytes(bridge_pair.public_pem)
    (tmp / "cozepy.pub").write_bytes(cozepy_pair.public_pem)
    (tmp / "bridge.key").write_bytes(bridge_pair.private_pem)
    admin_token = secrets.token_hex(24)  # hex: a urlsafe token may start with "-", which argparse takes for a flag
    sandbox_cmd = [*CLI, "sandbox", "--port", "0", "--chunk-delay-ms", str(args.chunk_delay_ms),
                   "--admin-token", admin_token,
                   "--app-id", OUR_APP, "--public-key", str(tmp / "bridge.pub"),
                   "--app-id", COZEPY_APP, "--public-key", str(tmp / "cozepy.pub")]
    async with started("sandbox", sandbox_cmd, child_env(tmp, "sandbox"), tmp=tmp, ready=sandbox_url_in) as (
        sandbox, sandbox_url
    ):
        extra = {"KAI_BRIDGE_COZE_BREAKER_RESET": str(args.breaker_reset)} if args.breaker_reset is not None else {}
        extra["KAI_BRIDGE_MCP_RATE_LIMIT_PER_MINUTE"] = "0"  # one load generator is one client: measure, not throttle
        env = child_env(tmp, "serve", KAI_BRIDGE_COZE_API_BASE=sandbox_url, KAI_BRIDGE_COZE_APP_ID=OUR_APP,
                        KAI_BRIDGE_COZE_KID=bridge_pair.kid, KAI_BRIDGE_COZE_PRIVATE_KEY_PATH=str(tmp / "bridge.key"),
                        KAI_BRIDGE_COZE_BOT_ID=BOT_ID, **extra)
        serve_ready, bare_ready = tmp / "serve.url", tmp / "bare.url"
        serve_cmd = [*CLI, "serve", "--port", "0", "--ready-file", str(serve_ready)]
        async with (
            started("serve", serve_cmd, env, tmp=tmp, ready=file_text(serve_ready)) as (serve, mcp_url),
            started("bare", [*BARE, "http", str(bare_ready)], child_env(tmp, "bare"), tmp=tmp,
                    ready=file_text(bare_ready)) as (bare, bare_url),
            cozepy_client(sandbox_url, cozepy_pair) as cozepy,
        ):
            procs = [serve, sandbox, bare]
            t = args.call_timeout
            # 1 + 2: consecutive calls, cold server, nothing discarded
            async with mcp_sessions(mcp_url, 2) as (s_send, s_query), mcp_sessions(bare_url, 1) as (s_bare,):
                seq = await sequential({"send_message": functools.partial(send_message, s_send),
                                        "cozepy chat.stream (baseline)": functools.partial(cozepy.chat, -1)},
                                       calls=args.calls, limit_s=t)
                seq |= await sequential({"coffee_knowledge_query": functools.partial(knowledge_query, s_query),
                                         "bare MCP server no-op (baseline)": functools.partial(bare_noop, s_bare)},
                                        calls=args.calls, limit_s=t)
            summaries = {name: Summary.of(name, outcomes) for name, outcomes in seq.items()}
            # 3: throughput, K sessions each
            k, secs = args.sessions, args.seconds
            loads: list[Load] = []
            for name, tool in (("send_message", send_message), ("coffee_knowledge_query", knowledge_query)):
                async with mcp_sessions(mcp_url, k) as sessions:
                    loads.append(await load(f"kai-bridge {name}", on_sessions(tool, sessions), workers=k,
                                            seconds=secs, limit_s=t, procs=procs))
            loads.append(await load("cozepy chat.stream (baseline for send_message)", cozepy.chat, workers=k,
                                    seconds=secs, limit_s=t, procs=procs))
            async with mcp_sessions(bare_url, k) as sessions:
                loads.append(await load("bare MCP server no-op (baseline for the MCP door)",
                                        on_sessions(bare_noop, sessions), workers=k, seconds=secs, limit_s=t,
                                        procs=procs))
            # 4: recovery
            async with mcp_sessions(mcp_url, 1) as (session,):
                for i in range(3):
                    await timed(functools.partial(send_message, session, i), limit_s=t)
                fault = await fault_run(session, sandbox=sandbox_url, admin_token=admin_token,
                                        bridge_health=mcp_url.removesuffix("/mcp") + "/health",
                                        interval=args.interval, healthy_s=2.0, fault_s=args.fault_seconds,
                                        clear_on_probe=args.clear == "after-probe",
                                        settle=args.settle, max_wait_s=args.max_recovery, limit_s=t)
    recovery = analyse_recovery(fault.outcomes, injected=fault.injected, cleared=fault.cleared, settle=args.settle)
    settings = {
        "sandbox chunk delay": f"{args.chunk_delay_ms:g} ms",
        "breaker reset": f"{args.breaker_reset:g} s (set by this run)" if args.breaker_reset is not None
        else "10 s (the default)",
        "serve settings": "defaults (log level INFO, SQLite store) + JWT OAuth env",
    }
    return Results(summaries, loads, recovery, fault, settings, time.perf_counter() - began)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100, help="consecutive calls per path (the guide: 100)")
    parser.add_argument("--sessions", type=int, default=16, help="concurrent MCP sessions in the throughput runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="sandbox pause between answer chunks")
    parser.add_argument("--breaker-reset", type=float, default=None,
                        help="KAI_BRIDGE_COZE_BREAKER_RESET for serve (default: leave the default, 10 s)")
    parser.add_argument("--fault-seconds", type=float, default=10.0, help="how long the chat routes fail")
    parser.add_argument("--clear", choices=["after-probe", "on-time"], default="after-probe",
                        help="clear the fault right after a failed breaker probe (worst case, default) or at "
                             "--fault-seconds")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between trickle calls")
    parser.add_argument("--settle", type=int, default=30, help="successes in a row that count as recovered")
    parser.add_argument("--max-recovery", type=float, default=45.0, help="give up waiting for recovery after this")
    parser.add_argument("--call-timeout", type=float, default=40.0, help="per-call limit")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its target")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kai-bridge-acceptance-") as tmp_name:
        results = anyio.run(run, args, Path(tmp_name))
    table, all_pass = acceptance_table(results, seconds=args.seconds, sessions=args.sessions, settle=args.settle,
                                       interval=args.interval)
    print(table)
    print(details(results, settle=args.settle, interval=args.interval))
    return 1 if args.check and not all_pass else 0


if __name__ == "__main__":
    raise SystemExit(main())
