"""Benchmark the MCP door: tool calls/s against a bare MCP server, and send_message against cozepy.

    .venv/bin/python scripts/bench/bench_mcp.py [--calls 1000] [--chats 60]

Prints Markdown tables (medians; ratios are computed within this one run):

1. ``coffee_knowledge_query`` over stdio and over Streamable HTTP, served by the real
   ``kai-bridge stdio`` / ``kai-bridge serve``, against a bare ``MCPServer`` with one no-op
   async tool on the same transport, driven by the same client (the SDK's ``ClientSession``,
   2025-11-25 handshake, sequential calls). Both servers run at once and their rows are
   interleaved rep by rep (bare, kai no-op, kai rows, bare, ...), so machine noise lands on
   both sides of every ratio. Three query mixes: one repeated question (the tool's answer
   cache), 64 questions with a new suffix each call (never a cache hit), and natural
   questions, each asked once (every labelled question of tests/data, zh and en: new words
   too). The result size (JSON bytes of the structured result) is reported per row, since
   every byte is serialised twice and parsed and validated by the client. Beside calls/s, the
   CPU time per call of the client (this process) and of the server process (Linux, from
   /proc): where the time goes, and a figure the machine's load moves much less than calls/s.
   Goal: >= 0.8x of the bare server's calls/s.
2. ``send_message`` through MCP (stdio, ``kai-bridge stdio``) against cozepy's
   ``AsyncCoze.chat.stream`` directly, both to the same sandbox (a separate
   ``kai-bridge sandbox`` process, no chunk delay), interleaved, same conversation reuse.
   Goal: the bridge adds <= 2 ms at p50.
3. The same chat layer by layer in one process (cozepy, our Coze client, the conversation
   service with its store records, the MCP tool call) to show where added time comes from.

Every server is a real subprocess; state and logs go to a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import httpx2
from cozepy import AsyncCoze, AsyncJWTAuth, ChatEventType, Message
from mcp import ClientSession, StdioServerParameters
from mcp.client import Client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from kai_bridge.conversations import ConversationService
from kai_bridge.coze import ChatRequest, CozeClient, EnterMessage
from kai_bridge.coze.auth import JWTAuth
from kai_bridge.keys import generate_key_pair, load_private_key
from kai_bridge.knowledge import KnowledgeBase, KnowledgeBrief, KnowledgeService
from kai_bridge.mcp import build_mcp_server
from kai_bridge.sandbox import COFFEE_BOT_ID, SandboxConfig, start_sandbox
from kai_bridge.store import open_store
from kai_bridge.tools import RegistryPluginRunner, ToolRegistry, build_registry

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the labelled answer sets and their checks live with the tests
from tests.bridge import stop_process  # noqa: E402
from tests.knowledge.support import ANSWER_SPLITS, SPLIT_TITLES, answer_cases, carries_fact, ends_on_colon  # noqa: E402

PY = sys.executable
CLI = [PY, "-m", "kai_bridge.cli"]
BARE = [PY, str(REPO / "scripts" / "bench" / "bare_mcp_server.py")]
TOKEN = "bench-token-0123456789abcdef0123456789"  # noqa: S105 - a throwaway token for local servers
REPEATED = "what is a washed process"
QUESTIONS = [
    "what is a washed process", "埃塞俄比亚咖啡有什么特点", "espresso extraction time", "how to store coffee beans",
    "Kenya SL28 flavour", "什么是日晒处理", "pour over ratio", "cold brew strength", "Geisha variety origin",
    "caffeine in robusta vs arabica", "哥伦比亚咖啡产区", "what does light roast taste like", "milk steaming temperature",
    "cupping protocol", "Yemen mocha history", "grind size for french press",
]
QUESTIONS = (QUESTIONS * 4)[:64]


ANSWER_LINES: list[str] = []  # filled by part_calls: the answer-fact table over stdio


def natural_questions() -> list[str]:
    """Every labelled question of the knowledge tests, once each (zh and en)."""
    found: list[str] = []
    for path in sorted((REPO / "tests" / "data").glob("knowledge_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.append(json.loads(line)["query"])
    return list(dict.fromkeys(found))


@dataclass
class Series:
    label: str
    rates: list[float]
    latencies_ms: list[float]
    result_bytes: list[int] = field(default_factory=list)
    client_cpu_ms: list[float] = field(default_factory=list)  # per call, one value per rep
    server_cpu_ms: list[float] = field(default_factory=list)

    @property
    def size(self) -> float:
        return statistics.median(self.result_bytes) if self.result_bytes else 0.0

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def cpu(self) -> str:
        """Client / server CPU ms per call (medians of reps), or "-" where unknown."""
        client = f"{statistics.median(self.client_cpu_ms):.3f}" if self.client_cpu_ms else "-"
        server = f"{statistics.median(self.server_cpu_ms):.3f}" if self.server_cpu_ms else "-"
        return f"{client} / {server}"

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p90(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def base_env(tmp: Path, name: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    # The embedded sandbox (where no Coze is set) streams unpaced here: this measures the bridge.
    env.update({"KAI_BRIDGE_DATA_DIR": str(tmp / f"{name}-data"), "KAI_BRIDGE_LOG_DIR": str(tmp / f"{name}-logs"),
                "KAI_BRIDGE_LOG_LEVEL": "WARNING", "KAI_BRIDGE_SANDBOX_STREAM_DELAY": "0",
                "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "scripts" / "bench")]), **extra})
    return env


# ---- sessions -----------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def stdio_session(command: list[str], env: dict[str, str]) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(REPO))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def _wait_for_file(path: Path, process: anyio.abc.Process, what: str) -> str:
    ready = anyio.Path(path)
    with anyio.fail_after(60):
        while not (await ready.exists() and (await ready.read_text()).strip()):
            if process.returncode is not None:
                raise RuntimeError(f"{what} exited with {process.returncode} before listening")
            await anyio.sleep(0.05)
    return (await ready.read_text()).strip()


@contextlib.asynccontextmanager
async def http_server(command: list[str], env: dict[str, str], ready: Path, what: str) -> AsyncIterator[str]:
    process = await anyio.open_process(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
    try:
        yield await _wait_for_file(ready, process, what)
    finally:
        await stop_process(process)


@contextlib.asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


# ---- part 1: calls/s ---------------------------------------------------------------------------
Args = Callable[[int], dict[str, Any]]


def child_pid(marker: str) -> int | None:
    """The pid of this process's child whose command line contains ``marker`` (Linux), if any."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and marker in command:
            return int(entry.name)
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_rep(session: ClientSession, tool: str, args_for: Args, *, start: int, calls: int,
                      series: Series, server: int | None = None) -> None:
    """One rep of ``calls`` sequential calls (arguments ``args_for(start + i)``), added to ``series``
    (with the CPU time of this process and of the ``server`` process per call)."""
    began = time.perf_counter()
    client_began, server_began = time.process_time(), cpu_seconds(server)
    for i in range(calls):
        begin = time.perf_counter()
        result = await session.call_tool(tool, args_for(start + i))
        series.latencies_ms.append((time.perf_counter() - begin) * 1000)
        if result.is_error:
            raise RuntimeError(f"{tool} failed during the benchmark: {result.content}")
        series.result_bytes.append(len(json.dumps(result.structured_content, ensure_ascii=False).encode()))
    series.rates.append(calls / (time.perf_counter() - began))
    series.client_cpu_ms.append((time.process_time() - client_began) / calls * 1000)
    server_now = cpu_seconds(server)
    if server_began is not None and server_now is not None:
        series.server_cpu_ms.append((server_now - server_began) / calls * 1000)


async def interleaved(bare: ClientSession, kai: ClientSession, *, calls: int, reps: int,
                      pids: tuple[int | None, int | None] = (None, None)) -> tuple[list[Series], Series]:
    """The bare no-op and every kai row, rep by rep in turn (see the module docstring)."""
    fixed: Args = lambda i: {"query": REPEATED}  # noqa: E731
    # A different question every call: the knowledge base's own cost, no cache hit.
    unique: Args = lambda i: {"query": f"{QUESTIONS[i % len(QUESTIONS)]} {i}"}  # noqa: E731
    pool = natural_questions()
    natural_calls = min(calls, max(10, len(pool) // reps))
    natural: Args = lambda i: {"query": pool[i % len(pool)]}  # noqa: E731
    rows: list[tuple[ClientSession, str, Args, int, Series]] = [
        (bare, "noop", fixed, calls, Series("bare MCPServer no-op", [], [])),
        (kai, "bench_noop", fixed, calls, Series("kai-bridge registry no-op (door cost)", [], [])),
        (kai, "coffee_knowledge_query", fixed, calls,
         Series("kai-bridge coffee_knowledge_query, repeated question", [], [])),
        (kai, "coffee_knowledge_query", unique, calls,
         Series("kai-bridge coffee_knowledge_query, new question each call", [], [])),
        (kai, "coffee_knowledge_query", natural, natural_calls,
         Series(f"kai-bridge coffee_knowledge_query, natural questions, each once ({len(pool)} zh/en)", [], [])),
    ]
    for session, tool, args_for, _, _ in rows:  # warm-up: pools, sockets, per-word memos
        for i in range(min(50, calls)):
            await session.call_tool(tool, fixed(i) if args_for is natural else args_for(100_000 + i))
    for rep in range(reps):
        for session, tool, args_for, n, series in rows:
            server = pids[0] if session is bare else pids[1]
            await measure_rep(session, tool, args_for, start=rep * n, calls=n, series=series, server=server)
    return [row[4] for row in rows[1:]], rows[0][4]


async def answer_facts(session: ClientSession) -> list[str]:
    """The labelled answer sets through ``coffee_knowledge_query`` over this session: the share of
    structured answers that carry their fact (tests/knowledge/support.py), per set and language."""
    counts: dict[tuple[str, str], list[int]] = {}
    colon = 0
    for split in ANSWER_SPLITS:
        for case in answer_cases(split):
            result = await session.call_tool("coffee_knowledge_query", {"query": case.query})
            brief = KnowledgeBrief.model_validate(result.structured_content)
            colon += ends_on_colon(brief)
            for key in ("all", case.lang):
                cell = counts.setdefault((split, key), [0, 0])
                cell[0] += carries_fact(brief, case)
                cell[1] += 1
    out = ["| answers over MCP stdio | " + " | ".join(SPLIT_TITLES[s] for s in ANSWER_SPLITS) + " |"]
    out.append("|---|" + "---:|" * len(ANSWER_SPLITS))
    for key in ("all", "zh", "en"):
        cells = [counts[(split, key)] for split in ANSWER_SPLITS]
        out.append(f"| {key} | " + " | ".join(f"{h}/{n} = {h / n:.3f}" for h, n in cells) + " |")
    out.append(f"\n- answers ending on a colon: {colon}")
    return out


async def part_calls(tmp: Path, *, calls: int, reps: int) -> list[tuple[str, list[Series], Series]]:
    rows: list[tuple[str, list[Series], Series]] = []
    extension = ["--extension", "bench_extension:install"]
    async with (
        stdio_session([*CLI, "stdio", "--no-sidecar", *extension], base_env(tmp, "stdio")) as kai_session,
        stdio_session([*BARE, "stdio"], base_env(tmp, "bare")) as bare_session,
    ):
        pids = (child_pid("bare_mcp_server.py stdio"), child_pid("kai_bridge.cli stdio"))
        kai, bare = await interleaved(bare_session, kai_session, calls=calls, reps=reps, pids=pids)
        ANSWER_LINES[:] = await answer_facts(kai_session)
    rows.append(("stdio", kai, bare))

    # Streamable HTTP (stateful, SSE replies: both servers on their defaults)
    http_calls = max(100, calls // 2)
    kai_ready, bare_ready = tmp / "bridge.url", tmp / "bare.url"
    # No per-client rate limit: the bare server has none, and this measures calls/s.
    env = base_env(tmp, "http", KAI_BRIDGE_MCP_AUTH_TOKEN=TOKEN, KAI_BRIDGE_MCP_RATE_LIMIT_PER_MINUTE="0")
    async with (
        http_server([*CLI, "serve", "--port", "0", "--ready-file", str(kai_ready), *extension], env, kai_ready,
                    "kai-bridge serve") as kai_url,
        http_server([*BARE, "http", str(bare_ready)], base_env(tmp, "bare-http"), bare_ready, "bare server") as bare_url,
        http_session(kai_url, TOKEN) as kai_session,
        http_session(bare_url, None) as bare_session,
    ):
        pids = (child_pid("bare_mcp_server.py http"), child_pid("kai_bridge.cli serve"))
        kai, bare = await interleaved(bare_session, kai_session, calls=http_calls, reps=reps, pids=pids)
    rows.append(("Streamable HTTP", kai, bare))
    return rows


# ---- part 2: send_message vs cozepy ------------------------------------------------------------
@contextlib.asynccontextmanager
async def sandbox_process(tmp: Path) -> AsyncIterator[tuple[str, Any, Any]]:
    bridge_pair, cozepy_pair = generate_key_pair(), generate_key_pair()
    (tmp / "bridge.pub").write_bytes(bridge_pair.public_pem)
    (tmp / "cozepy.pub").write_bytes(cozepy_pair.public_pem)
    (tmp / "bridge.key").write_bytes(bridge_pair.private_pem)
    command = [*CLI, "sandbox", "--port", "0", "--chunk-delay-ms", "0",
               "--app-id", "bench-bridge", "--public-key", str(tmp / "bridge.pub"),
               "--app-id", "bench-cozepy", "--public-key", str(tmp / "cozepy.pub")]
    process = await anyio.open_process(command, env=base_env(tmp, "sandbox"), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        buffer = b""
        with anyio.fail_after(60):
            while b"\n" not in buffer:
                buffer += await process.stdout.receive()
        line = buffer.decode().splitlines()[0]
        found = re.search(r"listening on (http://\S+)", line)
        if not found:
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        yield found.group(1), bridge_pair, cozepy_pair
    finally:
        await stop_process(process)


async def part_chats(tmp: Path, *, chats: int) -> list[Series]:
    async with sandbox_process(tmp) as (base_url, bridge_pair, cozepy_pair):
        env = base_env(tmp, "chat", KAI_BRIDGE_COZE_API_BASE=base_url, KAI_BRIDGE_COZE_APP_ID="bench-bridge",
                       KAI_BRIDGE_COZE_KID=bridge_pair.kid, KAI_BRIDGE_COZE_PRIVATE_KEY_PATH=str(tmp / "bridge.key"),
                       KAI_BRIDGE_COZE_BOT_ID=COFFEE_BOT_ID)
        coze = AsyncCoze(auth=AsyncJWTAuth(client_id="bench-cozepy", private_key=cozepy_pair.private_pem.decode(),
                                           public_key_id=cozepy_pair.kid, ttl=900, base_url=base_url),
                         base_url=base_url)
        conversation = await coze.conversations.create(bot_id=COFFEE_BOT_ID)
        question = "What is espresso?"

        async def direct() -> str:
            parts: list[str] = []
            stream = coze.chat.stream(bot_id=COFFEE_BOT_ID, user_id="bench-direct", conversation_id=conversation.id,
                                      additional_messages=[Message.build_user_question_text(question)])
            async for event in stream:
                if event.event == ChatEventType.CONVERSATION_MESSAGE_DELTA and event.message is not None:
                    parts.append(event.message.content)
            return "".join(parts)

        async with stdio_session([*CLI, "stdio", "--no-sidecar"], env) as session:

            async def bridged() -> str:
                result = await session.call_tool("send_message", {"message": question})
                if result.is_error or result.structured_content is None:
                    raise RuntimeError(f"send_message failed: {result.content}")
                return str(result.structured_content["answer"])

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                return None

            async def bridged_progress() -> str:
                result = await session.call_tool("send_message", {"message": question},
                                                 progress_callback=on_progress)
                return str((result.structured_content or {}).get("answer", ""))

            samples: dict[str, list[float]] = {"direct": [], "bridged": [], "progress": []}
            for _ in range(5):
                await direct()
                await bridged()
                await bridged_progress()
            answers = {await direct(), await bridged()}
            if len(answers) != 1:
                raise RuntimeError("the bridge and cozepy got different answers from the same sandbox")
            for _ in range(chats):
                for key, fn in (("direct", direct), ("bridged", bridged), ("progress", bridged_progress)):
                    samples[key].append(await timed(fn))
    return [
        Series("cozepy AsyncCoze.chat.stream (direct)", [], samples["direct"]),
        Series("kai-bridge send_message over MCP stdio", [], samples["bridged"]),
        Series("kai-bridge send_message, progress deltas on", [], samples["progress"]),
    ]


async def part_layers(tmp: Path, *, chats: int) -> list[Series]:
    """Where send_message's time goes: each layer in one process and loop, same in-process sandbox."""
    pair = generate_key_pair()
    question = "What is espresso?"
    config = SandboxConfig(apps=[("layers", pair.public_pem)], follow_up=False, max_conversations=100_000)
    async with (
        start_sandbox(config) as handle,
        httpx.AsyncClient(timeout=30) as http,
        open_store(f"sqlite:///{tmp / 'layers.db'}") as store,
    ):
        auth = JWTAuth(http=http, base_url=handle.base_url, app_id="layers", kid=pair.kid,
                       private_key=load_private_key(pair.private_pem, source="bench"))
        coze_client = CozeClient(http=http, base_url=handle.base_url, auth=auth)
        registry = ToolRegistry()
        service = ConversationService(coze=coze_client, store=store, plugins=RegistryPluginRunner(registry),
                                      default_bot_id=COFFEE_BOT_ID, max_rounds=3, chat_timeout=60)
        build_registry(knowledge=KnowledgeService(base=KnowledgeBase.load(), backend="local", asker=None),
                       conversations=service, registry=registry)
        cz = AsyncCoze(auth=AsyncJWTAuth(client_id="layers", private_key=pair.private_pem.decode(),
                                         public_key_id=pair.kid, ttl=900, base_url=handle.base_url),
                       base_url=handle.base_url)
        conv_direct = (await cz.conversations.create(bot_id=COFFEE_BOT_ID)).id
        conv_ours = (await coze_client.create_conversation(bot_id=COFFEE_BOT_ID)).id

        async def direct() -> None:
            async for _ in cz.chat.stream(bot_id=COFFEE_BOT_ID, user_id="d", conversation_id=conv_direct,
                                          additional_messages=[Message.build_user_question_text(question)]):
                pass

        async def client_only() -> None:
            await coze_client.stream_and_collect(ChatRequest(bot_id=COFFEE_BOT_ID, user_id="c", conversation_id=conv_ours, messages=[EnterMessage.user(question)]))

        async def service_only() -> None:
            await service.send_message(user_id="s", message=question)

        async with Client(build_mcp_server(registry), mode="legacy") as mcp_client:

            async def through_mcp() -> None:
                await mcp_client.call_tool("send_message", {"message": question, "user_id": "m"})

            paths = {"cozepy AsyncCoze.chat.stream": direct, "kai_bridge CozeClient.stream_and_collect": client_only,
                     "+ ConversationService.send_message (store records)": service_only,
                     "+ MCP tool call (in-process client)": through_mcp}
            samples: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(5):
                for fn in paths.values():
                    await fn()
            for _ in range(chats):
                for name, fn in paths.items():
                    samples[name].append(await timed(fn))
    return [Series(name, [], values) for name, values in samples.items()]


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


# ---- report ------------------------------------------------------------------------------------
def report(calls: list[tuple[str, list[Series], Series]], chats: list[Series], layers: list[Series], *,
           elapsed: float) -> str:
    out = ["### MCP tool calls (sequential, one client: `ClientSession`, 2025-11-25 handshake; kai and bare "
           "rows interleaved rep by rep)", "",
           "| transport | server / tool | calls/s (median of reps) | p50 ms | p90 ms | result bytes "
           "| CPU ms/call: client / server | vs bare |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for transport, kai, bare in calls:
        for series in [*kai, bare]:
            out.append(f"| {transport} | {series.label} | {series.rate:.0f} | {series.p50:.2f} | {series.p90:.2f} "
                       f"| {series.size:.0f} | {series.cpu} | {series.rate / bare.rate:.2f}x |")
    out += ["", *ANSWER_LINES]
    if not chats:
        goal = "; ".join(
            f"{transport}: " + ", ".join(f"{s.label.removeprefix('kai-bridge ')} {s.rate / bare.rate:.2f}x" for s in kai)
            for transport, kai, bare in calls
        )
        out += ["", f"- goal >= 0.8x bare calls/s: {goal}",
                f"- wall time {elapsed:.0f} s, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
                f"load average at the end {os.getloadavg()[0]:.1f}"]
        return "\n".join(out)
    direct, bridged, progress = chats
    out += ["", "### send_message through MCP (stdio) vs cozepy direct (same sandbox, interleaved)", "",
            "| path | N | p50 ms | p90 ms | added at p50 |", "|---|---:|---:|---:|---:|"]
    for series in (direct, bridged, progress):
        added = "" if series is direct else f"{series.p50 - direct.p50:+.2f} ms"
        out.append(f"| {series.label} | {len(series.latencies_ms)} | {series.p50:.2f} | {series.p90:.2f} | {added} |")
    out += ["", "### Where send_message's time goes (one process, one event loop, in-process sandbox)", "",
            "| layer | p50 ms | p90 ms | vs previous row at p50 |", "|---|---:|---:|---:|"]
    previous: Series | None = None
    for series in layers:
        step = "" if previous is None else f"{series.p50 - previous.p50:+.2f} ms"
        out.append(f"| {series.label} | {series.p50:.2f} | {series.p90:.2f} | {step} |")
        previous = series
    goal_calls = "; ".join(
        f"{transport}: " + ", ".join(f"{s.label.removeprefix('kai-bridge ')} {s.rate / bare.rate:.2f}x" for s in kai)
        for transport, kai, bare in calls
    )
    out += ["", f"- goal >= 0.8x bare calls/s: {goal_calls}",
            f"- goal <= 2 ms added at p50 by send_message: {bridged.p50 - direct.p50:+.2f} ms",
            f"- wall time {elapsed:.0f} s, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
            f"load average at the end {os.getloadavg()[0]:.1f}"]
    return "\n".join(out)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=600, help="calls per repetition over stdio (HTTP: half)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chats", type=int, default=40, help="send_message samples per path")
    parser.add_argument("--only-calls", action="store_true", help="part 1 only (tool calls/s against the bare server)")
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kai-bridge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        calls = await part_calls(tmp, calls=args.calls, reps=args.reps)
        chats = [] if args.only_calls else await part_chats(tmp, chats=args.chats)
        layers = [] if args.only_calls else await part_layers(tmp, chats=args.chats)
    print(report(calls, chats, layers, elapsed=time.perf_counter() - began))


if __name__ == "__main__":
    asyncio.run(main())
