"""Fault drills: the seed's acceptance table and the scale-out goals, measured on real processes.

    .venv/bin/python scripts/bench/bench_drills.py [--quick] [--check]

Starts, as subprocesses on 127.0.0.1 with a key pair generated for the run: ``kai-bridge
sandbox`` (the Coze-compatible API, admin routes and fault rules on, unpaced answers) and two
``kai-bridge serve`` replicas sharing a PostgreSQL schema of the run's own (127.0.0.1:5432,
database ``test``), configured by environment only (JWT OAuth against the sandbox, stateless
MCP as the Kubernetes manifests run them). The drill client plays the load balancer: it sends
calls round-robin to the replicas (and, after a replica is killed, to the survivor only). Then:

1. seed table through 2 replicas: 100 consecutive calls per tool (interleaved with the same calls
   to one replica, the baseline), K clients in a loop for S seconds, and recovery after every
   chat route failed (half 5xx, half dropped connections);
2. 20 % 5xx (half of them after the route did its work, so a chat was created and its answer
   lost) and 5 % 429 on every Coze route: tool success over N calls (send_message,
   get_conversation_messages, coffee_knowledge_query), and duplicate chats counted in the
   sandbox (``GET /_sandbox/chats``: two chats carrying one send's tag);
3. upstream hanging (a 60 s latency on every route, far beyond ``coze_timeout``): how long calls
   take to fail, how many before each replica's breaker opens, and the first success after the
   fault clears;
4. resources per replica: spawn to ready, idle RSS, peak RSS under the drills' load, beside a
   bare MCP SDK server (the baseline);
5. slow clients: M connections to one replica that never finish their headers, while a normal
   client keeps calling ``/health`` and a tool (latency beside its own just before);
6. kill -9 of one replica under webhook and tool load: acknowledged events lost, events
   dispatched twice, tool success through the surviving replica.

Prints Markdown tables, each figure beside the seed's target (where the seed has one) and our
goal. Every loop is bounded in count and time. ``--quick`` is a short run (smaller counts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
from bench_acceptance import (
    BREAKER_TEXT,
    Outcome,
    analyse_recovery,
    cpu_seconds_of,
    fault_run,
    percentile,
    text_of,
    timed,
)
from drill_cluster import (
    REPO,
    Proc,
    ReplicaConfig,
    Sandbox,
    event_body,
    mcp_sessions,
    pg_schema,
    replicas,
    sandbox,
    sign,
    started,
)
from mcp import ClientSession

from kai_bridge.coze.client import SEND_TAG_KEY
from kai_bridge.keys import generate_key_pair
from kai_bridge.store import open_store

PY = sys.executable
QUESTIONS = [
    "What is espresso?",
    "埃塞俄比亚咖啡有什么特点",
    "pour over ratio",
    "how to store coffee beans",
    "Kenya SL28 flavour",
    "什么是日晒处理",
    "cold brew strength",
    "grind size for french press",
]
ANNOUNCE = {
    "name": "announce",
    "event_type": "bot.published",
    "tool": "send_message",
    "arguments": {"message": "${event.bot_name} was published", "user_id": "webhook-${event.bot_id}"},
}


# ---- calls -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Call:
    """One tool call: which replica took it, when, and how it ended."""

    replica: str
    tool: str
    outcome: Outcome
    conversation_id: str = ""


async def call_tool(session: ClientSession, tool: str, arguments: dict[str, Any]) -> tuple[str | None, str]:
    """(None or the error text, the conversation id in the result)."""
    result = await session.call_tool(tool, arguments)
    if result.is_error:
        return text_of(result), ""
    data = result.structured_content or {}
    if tool == "send_message" and not (isinstance(data.get("answer"), str) and data["answer"]):
        return f"no answer in the result: {text_of(result)[:200]}", ""
    return None, str(data.get("conversation_id") or "")


def arguments_for(tool: str, user: str, i: int) -> dict[str, Any]:
    question = QUESTIONS[i % len(QUESTIONS)]
    if tool == "send_message":
        return {"message": question, "user_id": user}
    if tool == "get_conversation_messages":
        return {"user_id": user, "limit": 5}
    return {"query": f"{question} {i}"}  # coffee_knowledge_query: a new text each call, no cache hit


async def fresh_call(url: str, replica: str, tool: str, user: str, i: int, *, limit_s: float) -> Call:
    """One call on an MCP client of its own: a replica killed mid-call fails this call, not the drill's clients."""
    conversation = ""

    async def go() -> str | None:
        nonlocal conversation
        try:
            async with mcp_sessions(url, 1) as (session,):
                error, conversation = await call_tool(session, tool, arguments_for(tool, user, i))
        except Exception as exc:  # the client's task group: show the error inside it
            leaf: BaseException = exc
            while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
                leaf = leaf.exceptions[0]
            return f"{type(leaf).__name__}: {leaf}"
        return error

    outcome = await timed(go, limit_s=limit_s)
    return Call(replica, tool, outcome, conversation)


async def one_call(session: ClientSession, replica: str, tool: str, user: str, i: int, *, limit_s: float) -> Call:
    conversation = ""

    async def go() -> str | None:
        nonlocal conversation
        error, conversation = await call_tool(session, tool, arguments_for(tool, user, i))
        return error

    outcome = await timed(go, limit_s=limit_s)
    return Call(replica, tool, outcome, conversation)


class RoundRobin:
    """Looks like a ClientSession to ``bench_acceptance``: each call goes to the next replica."""

    def __init__(self, sessions: Sequence[ClientSession]) -> None:
        self._sessions = list(sessions)
        self._next = itertools.cycle(range(len(self._sessions)))

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self._sessions[next(self._next)].call_tool(name, arguments)


class Sampler:
    """Samples the replicas' RSS every 200 ms while running (the peak is kept on each Proc)."""

    def __init__(self, procs: Sequence[Proc]) -> None:
        self.procs = procs

    async def run(self) -> None:
        for _ in range(100_000):  # bounded; cancelled at the end of the run
            for proc in self.procs:
                proc.sample_rss()
            await anyio.sleep(0.2)


async def diagnostics(proc: Proc) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{proc.url}/diagnostics/coze")
    return cast(dict[str, Any], response.json()["client"])  # breaker, counters


# ---- report helpers ----------------------------------------------------------------------------
def verdict(passed: bool | None) -> str:
    return "—" if passed is None else ("**PASS**" if passed else "**FAIL**")


def fmt_s(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f} s"


def table(title: str, rows: list[tuple[str, str, str, str, bool | None]], notes: Sequence[str] = ()) -> str:
    out = [f"### {title}", "", "| figure | seed target | our goal | measured | result |", "|---|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} | {verdict(e)} |" for a, b, c, d, e in rows]
    if notes:
        out += ["", *[f"- {note}" for note in notes]]
    return "\n".join(out)


def ok_share(calls: Sequence[Call]) -> tuple[int, int, float]:
    ok = sum(c.outcome.ok for c in calls)
    return ok, len(calls), (ok / len(calls) if calls else 0.0)


def first_error(calls: Sequence[Call]) -> str:
    return next((c.outcome.error[:160] for c in calls if not c.outcome.ok), "")


def failure_kinds(calls: Sequence[Call], top: int = 4) -> str:
    """The commonest failures, by tool and error text (ids and numbers folded to #)."""
    kinds = Counter(f"{c.tool}: {_NUMBERS.sub('#', c.outcome.error)[:110]}" for c in calls if not c.outcome.ok)
    return "; ".join(f"{n} × `{kind}`" for kind, n in kinds.most_common(top))


_NUMBERS = re.compile(r"[0-9a-f]{8,}|\d+(?:\.\d+)?")


# ---- drill 1: the seed table through 2 replicas -----------------------------------------------
async def loop_calls(
    rr: RoundRobin, tool: str, user: str, deadline: float, outcomes: list[Outcome], limit_s: float
) -> None:
    """One load client: ``tool`` back to back until ``deadline`` (perf_counter)."""
    for i in range(1, 1_000_000):
        if time.perf_counter() >= deadline:
            return
        outcomes.append((await one_call(cast(ClientSession, rr), "", tool, user, i, limit_s=limit_s)).outcome)


def cpu_now(a: Proc, b: Proc, coze: Sandbox) -> dict[str, float]:
    """CPU seconds so far of the replicas, the sandbox and this client (Linux /proc)."""
    return {
        "replica a": cpu_seconds_of(a.pid),
        "replica b": cpu_seconds_of(b.pid),
        "sandbox": cpu_seconds_of(coze.proc.pid),
        "drill client": time.process_time(),
    }


async def drill_seed(args: argparse.Namespace, a: Proc, b: Proc, coze: Sandbox) -> str:
    t = args.call_timeout
    async with mcp_sessions(a.url, 2) as (sa, sa_only), mcp_sessions(b.url, 1) as (sb,):
        both = RoundRobin([sa, sb])
        seq: dict[str, list[Outcome]] = {}
        for tool in ("send_message", "coffee_knowledge_query"):
            for label in (f"{tool} via 2 replicas", f"{tool} via 1 replica (baseline)"):
                seq[label] = []
            for i in range(args.calls):  # interleaved: one call through both, one through a only
                seq[f"{tool} via 2 replicas"].append(
                    (await one_call(cast(ClientSession, both), "ab", tool, "seed-2", i, limit_s=t)).outcome
                )
                seq[f"{tool} via 1 replica (baseline)"].append(
                    (await one_call(sa_only, "a", tool, "seed-1", i, limit_s=t)).outcome
                )
    loads: dict[str, tuple[float, int, int, float, float]] = {}  # label -> calls/s, ok, errors, p50, p99
    k, secs = args.sessions, args.seconds
    cpu_notes: list[str] = []
    for tool in ("send_message", "coffee_knowledge_query"):
        for label, urls in ((f"{tool} via 2 replicas", [a.url, b.url]), (f"{tool} via 1 replica (baseline)", [a.url])):
            async with contextlib.AsyncExitStack() as stack:
                per = [await stack.enter_async_context(mcp_sessions(url, k)) for url in urls]
                workers = [RoundRobin([sessions[w] for sessions in per]) for w in range(k)]
                for w, rr in enumerate(workers):  # warm: each worker's conversation exists
                    await one_call(cast(ClientSession, rr), "", tool, f"load-{w}", 0, limit_s=t)
                outcomes: list[Outcome] = []
                cpu_before = cpu_now(a, b, coze)
                began = time.perf_counter()
                deadline = began + secs

                async with anyio.create_task_group() as tg:
                    for w, rr in enumerate(workers):
                        tg.start_soon(loop_calls, rr, tool, f"load-{w}", deadline, outcomes, t)
                elapsed = time.perf_counter() - began
                ok = sum(o.ok for o in outcomes)
                ms = [o.ms for o in outcomes]
                loads[label] = (ok / elapsed, ok, len(outcomes) - ok, percentile(ms, 50), percentile(ms, 99))
                cpu_after = cpu_now(a, b, coze)
                cpu_notes.append(
                    f"CPU during `{label}` (share of one core): "
                    + ", ".join(f"{name} {(cpu_after[name] - cpu_before[name]) / elapsed:.0%}" for name in cpu_before)
                )
    async with mcp_sessions(a.url, 1) as (ra,), mcp_sessions(b.url, 1) as (rb,):
        rr = RoundRobin([ra, rb])
        fault = await fault_run(
            cast(ClientSession, rr),
            sandbox=coze.url,
            admin_token=coze.admin_token,
            bridge_health=f"{a.url}/health",
            interval=0.1,
            healthy_s=2.0,
            fault_s=args.fault_seconds,
            clear_on_probe=False,
            settle=args.settle,
            max_wait_s=45.0,
            limit_s=t,
        )
    rec = analyse_recovery(fault.outcomes, injected=fault.injected, cleared=fault.cleared, settle=args.settle)
    rows: list[tuple[str, str, str, str, bool | None]] = []
    for tool in ("send_message", "coffee_knowledge_query"):
        two, one = seq[f"{tool} via 2 replicas"], seq[f"{tool} via 1 replica (baseline)"]
        ok2, ok1 = sum(o.ok for o in two), sum(o.ok for o in one)
        rows.append(
            (
                f"success, {len(two)} consecutive `{tool}`",
                "≥ 99 %",
                "100 %",
                f"{ok2}/{len(two)} (1 replica: {ok1}/{len(one)})",
                ok2 >= 0.99 * len(two),
            )
        )
    for tool in ("send_message", "coffee_knowledge_query"):
        two, one = seq[f"{tool} via 2 replicas"], seq[f"{tool} via 1 replica (baseline)"]
        mean2, mean1 = statistics.fmean(o.ms for o in two), statistics.fmean(o.ms for o in one)
        med2, med1 = statistics.median(o.ms for o in two), statistics.median(o.ms for o in one)
        rows.append(
            (
                f"average response, `{tool}`",
                "≤ 2 s",
                "≤ 2 s",
                f"{mean2 / 1000:.3f} s (p50 {med2:.0f} ms; 1 replica {mean1 / 1000:.3f} s, p50 {med1:.0f} ms, "
                f"ratio {med2 / med1:.2f})",
                mean2 <= 2000,
            )
        )
    for tool in ("send_message", "coffee_knowledge_query"):
        rate2, ok2, err2, p50, p99 = loads[f"{tool} via 2 replicas"]
        rate1, _ok1, err1, _p50, _p99 = loads[f"{tool} via 1 replica (baseline)"]
        rows.append(
            (
                f"throughput, `{tool}` ({k} clients, {secs:g} s)",
                "≥ 50 QPS",
                "≥ 50 QPS, 0 errors",
                f"{rate2:.0f} calls/s, {err2} errors, p50 {p50:.0f} ms, p99 {p99:.0f} ms (1 replica: "
                f"{rate1:.0f} calls/s, {err1} errors; ratio {rate2 / rate1:.2f})",
                rate2 >= 50 and err2 == 0,
            )
        )
    rows.append(
        (
            "recovery, `send_message` (fault cleared → sustained success)",
            "≤ 30 s",
            "≤ 1 s + a round trip",
            f"{fmt_s(rec.sustained_s)} (first success {fmt_s(rec.first_ok_s)})",
            rec.sustained_s is not None and rec.sustained_s <= 30,
        )
    )
    notes = [
        f"recovery fault: `{fault.rule}` on the chat routes for {fault.cleared - fault.injected:.1f} s, cleared "
        + (
            "right after a failed half-open probe (the worst moment)"
            if fault.cleared_after_probe
            else "on time (no failed probe seen)"
        )
        + f"; {rec.failed_under_fault}/{rec.calls_under_fault} calls under the fault failed; "
        f"one `send_message` every 100 ms, round-robin; sustained = {args.settle} successes in a row",
        *cpu_notes,
    ]
    return table(
        "1. Seed acceptance table, through 2 replicas (baseline: the same calls to 1 replica, interleaved)", rows, notes
    )


# ---- drill 2: 5xx and 429 on every route ------------------------------------------------------
FAULT_RULES = [  # 10 % 5xx before the route works, 5 % 429, then 10 % of all (11.8 % of the rest) after it
    {"route": "*", "error_rate": 0.10, "rate_limit_rate": 0.05, "retry_after": 1},
    {"route": "*", "error_rate": 0.118, "error_after_effect": True},
]


async def drill_errors(args: argparse.Namespace, a: Proc, b: Proc, coze: Sandbox) -> str:
    t, k, n = args.call_timeout, args.sessions, args.fault_calls
    tools = ["send_message", "send_message", "get_conversation_messages", "coffee_knowledge_query"]
    before = await coze.get("/_sandbox/chats")
    known = {c["id"] for c in before["chats"]}
    state_before = await coze.get("/_sandbox/state")
    diag_before = [await diagnostics(p) for p in (a, b)]
    calls: list[Call] = []
    async with mcp_sessions(a.url, k) as sa, mcp_sessions(b.url, k) as sb:
        for w in range(k):  # each worker's conversation exists before the faults
            await one_call(sa[w], "a", "send_message", f"faults-{w}", 0, limit_s=t)
        await coze.faults(FAULT_RULES)
        counter = itertools.count()
        began = time.perf_counter()

        async def worker(w: int) -> None:
            for _ in range(n):
                i = next(counter)
                if i >= n:
                    return
                replica, session = ("a", sa[w]) if i % 2 == 0 else ("b", sb[w])
                calls.append(await one_call(session, replica, tools[i % len(tools)], f"faults-{w}", i, limit_s=t))

        try:
            async with anyio.create_task_group() as tg:
                for w in range(k):
                    tg.start_soon(worker, w)
        finally:
            await coze.faults(None)
        elapsed = time.perf_counter() - began
    await anyio.sleep(0.5)  # chats created by the last after-effect 5xx finish
    after = await coze.get("/_sandbox/chats")
    state = await coze.get("/_sandbox/state")
    diag = [await diagnostics(p) for p in (a, b)]
    fresh = [c for c in after["chats"] if c["id"] not in known]
    tags = Counter(c["question_meta_data"].get(SEND_TAG_KEY) for c in fresh)
    untagged = tags.pop(None, 0)
    duplicates = sum(count - 1 for count in tags.values() if count > 1)
    sends = [c for c in calls if c.tool == "send_message"]
    ok, total, share = ok_share(calls)
    send_ok = sum(c.outcome.ok for c in sends)
    injected = {
        key: state["faults_injected"].get(key, 0) - state_before["faults_injected"].get(key, 0)
        for key in ("error", "rate_limit")
    }
    counters = ("retries", "chat_creates_checked", "chat_creates_resumed")
    moved = {
        key: sum(
            d["counters"].get(key, 0) - d0["counters"].get(key, 0) for d, d0 in zip(diag, diag_before, strict=True)
        )
        for key in counters
    }
    by_tool = ", ".join(
        f"`{tool}` {sum(c.outcome.ok for c in calls if c.tool == tool)}/{sum(c.tool == tool for c in calls)}"
        for tool in dict.fromkeys(tools)
    )
    rows: list[tuple[str, str, str, str, bool | None]] = [
        (
            f"tool success, {total} calls ({k} clients, round-robin)",
            "—",
            "≥ 99.9 %",
            f"{ok}/{total} = {100 * share:.2f} % ({by_tool})",
            share >= 0.999 if total >= 1000 else None,
        ),
        (
            "duplicate chats (one send, two Coze chats)",
            "—",
            "0",
            f"{duplicates} ({len(fresh)} chats for {send_ok} sends that succeeded, {len(sends)} sent; "
            f"{untagged} without a tag)",
            duplicates == 0,
        ),
        (
            "mean / p99 call time under the faults",
            "≤ 2 s",
            "≤ 2 s",
            f"{statistics.fmean(c.outcome.ms for c in calls) / 1000:.3f} s / "
            f"{percentile([c.outcome.ms for c in calls], 99) / 1000:.3f} s",
            None,
        ),
    ]
    notes = [
        f"rules `{json.dumps(FAULT_RULES)}` (the sandbox's fault dice, seed {args.seed}): "
        f"{injected['error']} 5xx and {injected['rate_limit']} 429 injected in {elapsed:.1f} s",
        f"bridge counters over both replicas: {moved}",
        f"first failure: `{first_error(calls)}`" if ok < total else "no failure",
        *([f"failures by kind: {failure_kinds(calls)}"] if ok < total else []),
    ]
    if total < 1000:
        notes.append(f"--quick: {total} calls, fewer than the goal's 1,000, so no verdict on the rate")
    return table("2. 20 % 5xx + 5 % 429 on every Coze route", rows, notes)


# ---- drill 3: upstream hanging ----------------------------------------------------------------
async def drill_hang(args: argparse.Namespace, a: Proc, b: Proc, coze: Sandbox) -> str:
    users = 50
    interval = 0.1
    calls: list[Call] = []
    marks: dict[str, float] = {}
    diag_before = [await diagnostics(p) for p in (a, b)]
    async with mcp_sessions(a.url, 1) as (sa,), mcp_sessions(b.url, 1) as (sb,):
        for u in range(users):  # every user's conversation exists before the hang
            await one_call((sa, sb)[u % 2], "", "send_message", f"hang-{u}", 0, limit_s=args.call_timeout)

        async def launch(i: int) -> None:
            replica, session = ("a", sa) if i % 2 == 0 else ("b", sb)
            calls.append(
                await one_call(session, replica, "send_message", f"hang-{i % users}", i, limit_s=args.call_timeout)
            )

        recovered = anyio.Event()
        async with anyio.create_task_group() as tg:
            await coze.faults([{"route": "*", "latency_ms": 60_000}])
            marks["injected"] = time.perf_counter()
            for i in itertools.count():
                now = time.perf_counter()
                if "cleared" not in marks and now - marks["injected"] >= args.hang_seconds:
                    marks["cleared"] = time.perf_counter()
                    await coze.faults(None)
                if "cleared" in marks:
                    done_after = [c for c in calls if c.outcome.start >= marks["cleared"]]
                    if sum(c.outcome.ok for c in done_after) >= 20 or now - marks["cleared"] > 15:
                        recovered.set()
                        break
                tg.start_soon(launch, i)
                await anyio.sleep(interval)
            with anyio.move_on_after(args.call_timeout):
                await recovered.wait()
            tg.cancel_scope.cancel()
    diag = [await diagnostics(p) for p in (a, b)]
    injected, cleared = marks["injected"], marks["cleared"]
    under = [c for c in calls if injected <= c.outcome.start < cleared - 0.05]
    failed = [c for c in under if not c.outcome.ok]
    slow = [c for c in failed if BREAKER_TEXT not in c.outcome.error]
    fast = [c for c in failed if BREAKER_TEXT in c.outcome.error]
    # Per replica: when the breaker first refused a call (from the hang's start), how many calls
    # reached the hung Coze before (admitted while it was closed: with a call every 200 ms per
    # replica and a 2 s timeout, several are in flight when it opens), and the probes after.
    opening: dict[str, tuple[float, int, int]] = {}
    for name in ("a", "b"):
        mine = [c for c in failed if c.replica == name]
        first_fast = min((c.outcome.start for c in mine if BREAKER_TEXT in c.outcome.error), default=math.inf)
        slow_mine = [c for c in mine if BREAKER_TEXT not in c.outcome.error]
        opening[name] = (
            first_fast - injected,
            sum(c.outcome.start < first_fast for c in slow_mine),
            sum(c.outcome.start >= first_fast for c in slow_mine),
        )
    first_ok = min((c.outcome.end - cleared for c in calls if c.outcome.ok and c.outcome.end > cleared), default=None)
    first_ok_by = {
        name: min(
            (c.outcome.end - cleared for c in calls if c.replica == name and c.outcome.ok and c.outcome.end > cleared),
            default=None,
        )
        for name in ("a", "b")
    }
    after_failed = [c for c in calls if c.outcome.start >= cleared and not c.outcome.ok]
    deadline = args.coze_timeout
    slow_ms = [c.outcome.ms for c in slow]
    threshold = int(diag[0]["breaker"]["failure_threshold"])
    opened = [
        d["breaker"]["opened_count"] - d0["breaker"]["opened_count"] for d, d0 in zip(diag, diag_before, strict=True)
    ]
    worst = max(slow_ms, default=math.nan) / 1000
    rows: list[tuple[str, str, str, str, bool | None]] = [
        (
            "calls that reached the hung Coze: time to fail",
            "—",
            f"within the deadline ({deadline:g} s coze_timeout for the create, + {deadline:g} s for its one check)",
            f"p50 {fmt_s(statistics.median(slow_ms) / 1000 if slow_ms else None)}, max {fmt_s(worst)} ({len(slow)} calls)",
            bool(slow_ms) and worst <= 2 * deadline + 1.0,
        ),
        (
            "breaker opens after N failures (per replica)",
            "—",
            f"N = coze_breaker_failures = {threshold}: open ≈ coze_timeout after the hang began",
            "; ".join(
                f"{name}: first refusal {at:.2f} s after the hang began, {admitted} calls admitted before, "
                f"{probes} probes after"
                for name, (at, admitted, probes) in opening.items()
            )
            + f"; {len(fast)} calls refused at once, p50 {fmt_s(percentile([c.outcome.ms for c in fast], 50) / 1000, 3)}",
            all(at <= deadline + threshold * 0.2 + 0.5 for at, _, _ in opening.values()) and bool(fast),
        ),
        (
            "fault cleared → first success",
            "≤ 30 s (recovery)",
            "≤ 1 s",
            f"{fmt_s(first_ok)} (a {fmt_s(first_ok_by['a'])}, b {fmt_s(first_ok_by['b'])})",
            first_ok is not None and first_ok <= 1.0,
        ),
        (
            "calls started after the clear that failed",
            "—",
            "only those the breaker refused before its probe",
            f"{len(after_failed)} ({sum(BREAKER_TEXT in c.outcome.error for c in after_failed)} by the breaker)",
            None,
        ),
    ]
    notes = [
        f'`{{"route": "*", "latency_ms": 60000}}` for {args.hang_seconds:g} s; one `send_message` '
        f"started every {interval * 1000:.0f} ms (round-robin, {users} users), coze_timeout {deadline:g} s, "
        f"breaker reset {args.breaker_reset:g} s; breaker openings during the drill: a {opened[0]}, b {opened[1]}",
        f"first slow failure: `{slow[0].outcome.error[:160]}`" if slow else "no slow failure",
    ]
    for name in ("a", "b"):
        around = sorted(
            (c for c in calls if c.replica == name and c.outcome.end > cleared - 0.5), key=lambda c: c.outcome.start
        )[:16]
        notes.append(
            f"replica {name} around the clear (start → end, s from the clear): "
            + ", ".join(
                f"{c.outcome.start - cleared:+.2f} → {c.outcome.end - cleared:+.2f} "
                + ("ok" if c.outcome.ok else ("breaker" if BREAKER_TEXT in c.outcome.error else "failed"))
                for c in around
            )
        )
    return table("3. Upstream hanging (latency ≫ timeout)", rows, notes)


# ---- drill 5: slow clients --------------------------------------------------------------------
async def normal_client(url: str, session: ClientSession, seconds: float) -> tuple[list[float], list[float], int]:
    """``/health`` and ``coffee_knowledge_query`` back to back for ``seconds``: their times (ms), errors."""
    health: list[float] = []
    tool: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=10) as http:
        for i in range(100_000):
            if time.perf_counter() >= deadline:
                break
            start = time.perf_counter()
            try:
                response = await http.get(f"{url}/health")
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            health.append((time.perf_counter() - start) * 1000)
            errors += not ok
            call = await one_call(session, "a", "coffee_knowledge_query", "slow", i, limit_s=10)
            tool.append(call.outcome.ms)
            errors += not call.outcome.ok
            await anyio.sleep(0.05)
    return health, tool, errors


async def drill_slow_clients(args: argparse.Namespace, a: Proc) -> str:
    port = int(a.url.rsplit(":", 1)[1])
    count, timeout = args.slow_clients, args.request_timeout
    async with mcp_sessions(a.url, 1) as (session,):
        base_health, base_tool, base_errors = await normal_client(a.url, session, 3.0)
        opened: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        refused = 0
        began = time.perf_counter()
        for _ in range(count):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                refused += 1
                continue
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never-Ends: ")
            opened.append((time.perf_counter(), reader, writer))
        open_s = time.perf_counter() - began
        closes: list[float] = []
        answers: Counter[str] = Counter()

        async def watch(at: float, reader: asyncio.StreamReader) -> None:
            try:
                with anyio.fail_after(timeout + 20):
                    data = await reader.read()
                answers[data[:12].decode(errors="replace") or "closed, no answer"] += 1
            except (TimeoutError, OSError) as exc:
                answers[type(exc).__name__] += 1
            closes.append(time.perf_counter() - at)

        async with anyio.create_task_group() as tg:
            for at, reader, _ in opened:
                tg.start_soon(watch, at, reader)
            held_health, held_tool, held_errors = await normal_client(a.url, session, min(timeout - 1, 4.0))
        for _, _, writer in opened:
            writer.close()
    rows: list[tuple[str, str, str, str, bool | None]] = [
        (
            f"{count} connections that never finish their headers: closed after",
            "—",
            f"server_request_timeout = {timeout:g} s",
            f"p50 {fmt_s(percentile(closes, 50))}, max {fmt_s(max(closes, default=math.nan))}; answers: "
            + ", ".join(f"{k.strip()} ×{v}" for k, v in answers.most_common())
            + f"; {refused} refused",
            bool(closes) and max(closes) <= timeout + 5 and len(closes) == count,
        ),
        (
            "a normal client meanwhile: `/health` p50 / max",
            "—",
            "served, ≤ 2 s",
            f"{percentile(held_health, 50):.1f} / {max(held_health):.1f} ms (just before: "
            f"{percentile(base_health, 50):.1f} / {max(base_health):.1f} ms), {held_errors} errors",
            held_errors == 0 and max(held_health) <= 2000,
        ),
        (
            "a normal client meanwhile: `coffee_knowledge_query` p50 / max",
            "≤ 2 s",
            "served, ≤ 2 s",
            f"{percentile(held_tool, 50):.1f} / {max(held_tool):.1f} ms (just before: "
            f"{percentile(base_tool, 50):.1f} / {max(base_tool):.1f} ms)",
            held_errors == 0 and max(held_tool) <= 2000,
        ),
    ]
    notes = [
        f"opened {len(opened)} connections in {open_s:.1f} s to replica a (server_max_connections "
        f"{args.max_connections}); the normal client ran {len(held_health)} rounds while they were held "
        f"({base_errors} errors just before)"
    ]
    return table("5. Slow clients", rows, notes)


# ---- drill 6: kill -9 under webhook and tool load ---------------------------------------------
async def drill_kill(
    args: argparse.Namespace, a: Proc, b: Proc, coze: Sandbox, config: ReplicaConfig, store_url: str
) -> str:
    t, k, n = args.call_timeout, args.kill_clients, args.events
    ids = [f"76{i:017d}" for i in range(n)]
    bodies = {event_id: event_body(event_id, f"73{i:017d}") for i, event_id in enumerate(ids)}
    known = {c["id"] for c in (await coze.get("/_sandbox/chats"))["chats"]}
    calls: list[Call] = []
    acked: dict[str, str] = {}  # event id -> the replica that acknowledged it
    unanswered: list[str] = []
    killed: dict[str, float] = {}
    queue = list(reversed(ids))
    # The survivor's clients keep their sessions; each call to the replica that is killed has an
    # MCP client of its own (a connection cut mid-call would otherwise tear the client down).
    async with open_store(store_url) as store, httpx.AsyncClient(timeout=30) as http, mcp_sessions(b.url, k) as sb:

        async def post(target: Proc, event_id: str) -> bool:
            body = bodies[event_id]
            try:
                response = await http.post(
                    f"{target.url}/webhook/coze", content=body, headers=sign(body, config.verify_token)
                )
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        async def sender(s: int) -> None:
            for j in itertools.count():
                if not queue:
                    return
                event_id = queue.pop()
                target = b if "at" in killed or (s + j) % 2 else a
                if await post(target, event_id):
                    acked[event_id] = target.name
                    if len(acked) == n // 3 and "at" not in killed:
                        os.kill(a.pid, 9)  # mid-burst: other deliveries and tool calls are in flight
                        killed["at"] = time.perf_counter()
                else:
                    unanswered.append(event_id)
                await anyio.sleep(0.02)

        stop = anyio.Event()

        async def tool_worker(w: int) -> None:
            for i in range(100_000):
                if stop.is_set():
                    return
                tool = "send_message" if i % 4 < 2 else "coffee_knowledge_query"
                if "at" not in killed and i % 2 == 0:
                    calls.append(await fresh_call(a.url, "a", tool, f"kill-{w}", i, limit_s=t))
                else:
                    calls.append(await one_call(sb[w], "b", tool, f"kill-{w}", i, limit_s=t))

        async with anyio.create_task_group() as tg:
            for w in range(k):
                tg.start_soon(tool_worker, w)
            async with anyio.create_task_group() as senders:
                for s in range(4):
                    senders.start_soon(sender, s)
            with anyio.move_on_after(30):
                await a.process.wait()
            # Coze re-sends what got no answer (and here, for good measure, 5 it got an answer for): to b.
            for event_id in [*unanswered, *sorted(acked)[:5]]:
                if await post(b, event_id):
                    acked.setdefault(event_id, "b (re-sent)")
            with anyio.move_on_after(args.lease + 60):
                for _ in range(10_000):  # polls the store: the events are done by other processes
                    if (await store.count_events()).get("done", 0) >= n:
                        break
                    await anyio.sleep(0.2)
            await anyio.sleep(1.0)  # a little more tool load after the takeover
            stop.set()
        settled = time.perf_counter() - killed.get("at", time.perf_counter())
        stored = {s.dedup_key.removeprefix("event_id:"): s for s in await store.list_events(limit=10 * n)}
        details = [await store.get_event(event_id=s.id) for s in stored.values()]
    chats = [c for c in (await coze.get("/_sandbox/chats"))["chats"] if c["id"] not in known]
    followed = (await diagnostics(b))["counters"].get("sends_followed", 0)
    tool_conversations = {c.conversation_id for c in calls if c.conversation_id}
    per_conversation = Counter(c["conversation_id"] for c in chats if c["conversation_id"] not in tool_conversations)
    twice = sum(count - 1 for count in per_conversation.values() if count > 1)
    lost = [event_id for event_id in acked if event_id not in stored or stored[event_id].status != "done"]
    attempts = Counter(e.attempts for e in details if e)
    kill_at = killed.get("at", math.inf)
    in_flight = [c for c in calls if c.replica == "a" and c.outcome.start < kill_at <= c.outcome.end]
    on_b = [c for c in calls if c.replica == "b"]
    after_kill = [c for c in on_b if c.outcome.start >= kill_at]
    ok_b, total_b, share_b = ok_share(on_b)
    ok_after, total_after, _ = ok_share(after_kill)
    rows: list[tuple[str, str, str, str, bool | None]] = [
        (
            "acknowledged events lost",
            "—",
            "0",
            f"{len(lost)} of {len(acked)} acknowledged ({sum(v == 'a' for v in acked.values())} by the killed replica "
            f"before the kill; {len(unanswered)} unanswered, re-sent to b)",
            not lost and len(stored) == n,
        ),
        (
            "events dispatched twice (two Coze chats for one event)",
            "—",
            "0",
            f"{twice} ({len(per_conversation)} event conversations in Coze for {n} events; attempts per event "
            f"{dict(sorted(attempts.items()))})",
            twice == 0,
        ),
        (
            "tool success through the surviving replica",
            "≥ 99 %",
            "≥ 99 %",
            f"{ok_b}/{total_b} = {100 * share_b:.1f} % (after the kill: {ok_after}/{total_after}; call time after the "
            f"kill p50 {percentile([c.outcome.ms for c in after_kill], 50):.0f} ms, max "
            f"{max((c.outcome.ms for c in after_kill), default=math.nan) / 1000:.1f} s)",
            share_b >= 0.99,
        ),
        (
            "tool calls in flight on the killed replica",
            "—",
            "fail fast, clearly",
            f"{len(in_flight)}, failed {sum(not c.outcome.ok for c in in_flight)} (`{first_error(in_flight)[:80]}`)"
            if in_flight
            else "0",
            None,
        ),
    ]
    notes = [
        f"{n} signed `bot.published` events from 4 senders (route `announce`: `send_message`), {k} tool clients "
        f"(`send_message` / `coffee_knowledge_query`); SIGKILL of replica a after {n // 3} acknowledgements; "
        f"webhook_lease and conversation_lease {args.lease:g} s; every event done {fmt_s(settled, 1)} after the kill",
        f"sends replica b found already made by a (the chat followed, not started again): {followed}",
    ]
    return table("6. kill -9 of a replica under webhook and tool load", rows, notes)


# ---- main --------------------------------------------------------------------------------------
def resources_table(procs: Sequence[Proc], idle: dict[str, float], bare: tuple[float, float]) -> str:
    rows: list[tuple[str, str, str, str, bool | None]] = []
    for proc in procs:
        rows.append(
            (
                f"replica {proc.name}: spawn → ready / idle RSS / peak RSS under load",
                "—",
                "ready ≤ 10 s, RSS ≤ 512 MiB (the manifests' limit)",
                f"{proc.ready_s:.2f} s / {idle[proc.name]:.0f} MiB / {proc.rss_peak:.0f} MiB",
                proc.ready_s <= 10 and proc.rss_peak <= 512,
            )
        )
    rows.append(
        (
            "bare MCP SDK server (baseline): spawn → ready / idle RSS",
            "—",
            "—",
            f"{bare[0]:.2f} s / {bare[1]:.0f} MiB",
            None,
        )
    )
    return table(
        "4. Resources per replica",
        rows,
        ["peak RSS sampled every 200 ms over drills 1-3 and 5; the two replicas started in parallel"],
    )


async def run(args: argparse.Namespace, tmp: Path) -> list[str]:
    pair = generate_key_pair()
    key_file = tmp / "coze.pem"
    key_file.touch(mode=0o600)
    key_file.write_bytes(pair.private_pem)
    settings = {
        "KAI_BRIDGE_COZE_TIMEOUT": str(args.coze_timeout),
        "KAI_BRIDGE_COZE_BREAKER_RESET": str(args.breaker_reset),
        "KAI_BRIDGE_SERVER_REQUEST_TIMEOUT": str(args.request_timeout),
        "KAI_BRIDGE_SERVER_MAX_CONNECTIONS": str(args.max_connections),
        "KAI_BRIDGE_WEBHOOK_LEASE": str(args.lease),
        "KAI_BRIDGE_CONVERSATION_LEASE": str(args.lease),
        "KAI_BRIDGE_STORE_POOL_MAX": "10",
        "KAI_BRIDGE_MCP_STATELESS": "false" if args.sessions_mcp else "true",
    }
    out = Printed()
    with pg_schema() as store_url:
        async with sandbox(tmp, pair, python=PY, seed=args.seed) as coze:
            config = ReplicaConfig(
                store_url=store_url,
                coze_url=coze.url,
                kid=pair.kid,
                key_file=key_file,
                routes=[ANNOUNCE],
                settings=settings,
            )
            async with replicas(config, tmp, ["a", "b"], python=PY) as (a, b):
                await anyio.sleep(2.0)
                idle = {p.name: p.sample_rss() for p in (a, b)}
                a.rss_peak = b.rss_peak = 0.0
                async with started(
                    "bare",
                    [PY, str(REPO / "scripts" / "bench" / "bare_mcp_server.py"), "http"],
                    {**os.environ, "PYTHONPATH": str(REPO)},
                    tmp / "bare",
                    ready_flag=False,
                ) as bare_proc:
                    await anyio.sleep(2.0)
                    bare = (bare_proc.ready_s, bare_proc.sample_rss())
                sampler = Sampler([a, b])
                async with anyio.create_task_group() as tg:
                    tg.start_soon(sampler.run)
                    if 1 in args.only:
                        out.append(await drill_seed(args, a, b, coze))
                    if 2 in args.only:
                        out.append(await drill_errors(args, a, b, coze))
                    if 3 in args.only:
                        out.append(await drill_hang(args, a, b, coze))
                    if 5 in args.only:
                        out.append(await drill_slow_clients(args, a))
                    tg.cancel_scope.cancel()
                out.append(resources_table([a, b], idle, bare))
                if 6 in args.only:
                    out.append(await drill_kill(args, a, b, coze, config, store_url))
    return out


class Printed(list[str]):
    """The tables so far; each is printed as soon as it is measured (a later failure keeps them)."""

    def append(self, text: str) -> None:
        super().append(text)
        print(text + "\n", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short run: smaller counts, shorter phases")
    parser.add_argument("--calls", type=int, default=100, help="consecutive calls per tool (the seed: 100)")
    parser.add_argument("--sessions", type=int, default=16, help="concurrent clients in the load phases")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--fault-seconds", type=float, default=10.0, help="drill 1: how long the chat routes fail")
    parser.add_argument("--settle", type=int, default=30, help="drill 1: successes in a row that count as recovered")
    parser.add_argument("--fault-calls", type=int, default=1200, help="drill 2: tool calls under 5xx/429")
    parser.add_argument("--hang-seconds", type=float, default=10.0, help="drill 3: how long Coze hangs")
    parser.add_argument("--slow-clients", type=int, default=1200, help="drill 5: connections that never finish")
    parser.add_argument("--events", type=int, default=120, help="drill 6: webhook events")
    parser.add_argument("--kill-clients", type=int, default=8, help="drill 6: tool clients")
    parser.add_argument("--coze-timeout", type=float, default=2.0, help="KAI_BRIDGE_COZE_TIMEOUT of the replicas")
    parser.add_argument("--breaker-reset", type=float, default=1.0, help="KAI_BRIDGE_COZE_BREAKER_RESET (default 1)")
    parser.add_argument("--request-timeout", type=float, default=5.0, help="KAI_BRIDGE_SERVER_REQUEST_TIMEOUT")
    parser.add_argument("--max-connections", type=int, default=2000, help="KAI_BRIDGE_SERVER_MAX_CONNECTIONS")
    parser.add_argument("--lease", type=float, default=3.0, help="KAI_BRIDGE_WEBHOOK_LEASE and KAI_BRIDGE_CONVERSATION_LEASE")
    parser.add_argument("--seed", type=int, default=11, help="the sandbox's fault dice")
    parser.add_argument("--call-timeout", type=float, default=60.0, help="per-call limit on the client side")
    parser.add_argument(
        "--sessions-mcp",
        action="store_true",
        help="stateful MCP sessions (each client keeps one per replica) instead of stateless",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its goal")
    parser.add_argument(
        "--only",
        type=lambda text: {int(x) for x in text.split(",")},
        default={1, 2, 3, 5, 6},
        help="run only these drills, e.g. 2,3 (the resources table 4 always comes)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.seconds, args.fault_seconds, args.settle = 20, 3.0, 4.0, 10
        args.fault_calls, args.hang_seconds, args.slow_clients, args.events = 200, 5.0, 300, 30
        args.sessions, args.kill_clients = 8, 4
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    print(f"## Fault drills{' (--quick)' if args.quick else ''}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="kai-bridge-drills-") as tmp_name:
        tables = anyio.run(run, args, Path(tmp_name))
    print(
        f"- wall time {time.perf_counter() - began:.0f} s, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average at the end {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f}; "
        f"replicas: coze_timeout {args.coze_timeout:g} s, breaker reset {args.breaker_reset:g} s, "
        f"server_request_timeout {args.request_timeout:g} s, server_max_connections {args.max_connections}, "
        "other settings at their defaults"
    )
    failed = any("**FAIL**" in t for t in tables)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
