"""What a new user runs first, as real ``kai-bridge`` processes with nothing configured.

Each process gets a home of its own inside ``tmp_path`` (HOME and the XDG folders), no
``KAI_BRIDGE_*`` variable, and an empty working folder, so these tests see what a fresh
clone sees and never write into the real home.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FIXTURE_SERVER = REPO / "tests" / "upstream" / "kai_fixture_server.py"
_SCRIPT = Path(sys.executable).with_name("kai-bridge")
# The installed console script when there is one (it is what a user runs), else the module.
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "kai_bridge.cli"]


@dataclass(frozen=True)
class Home:
    root: Path
    cwd: Path
    env: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return self.root / "xdg-data" / "kai-bridge"

    @property
    def log_dir(self) -> Path:
        return self.root / "xdg-state" / "kai-bridge" / "log"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAI_BRIDGE_", "XDG_"))}
    env.update(
        {
            "HOME": str(tmp_path / "home"),
            "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
            "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
            "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
            "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
            "PYTHONPATH": str(REPO),
        }
    )
    return Home(root=tmp_path, cwd=cwd, env=env)


def kai(home: Home, *args: str, extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        cwd=home.cwd,
        env={**home.env, **(extra or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ---- state and logs live in per-user folders --------------------------------------------------
# Unpaced sandbox here (KAI_BRIDGE_SANDBOX_STREAM_DELAY=0) for speed: the pace has its own test.
UNPACED = {"KAI_BRIDGE_SANDBOX_STREAM_DELAY": "0"}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["call", "coffee_knowledge_query", '{"query": "埃塞俄比亚咖啡特点"}'], id="call"),
        pytest.param(["chat", "What is a flat white?"], id="chat"),
        pytest.param(["token"], id="token"),
        pytest.param(["doctor"], id="doctor"),
    ],
)
def test_a_one_shot_command_leaves_its_working_folder_empty(home: Home, args: list[str]) -> None:
    run = kai(home, *args, extra=UNPACED)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in home.cwd.iterdir()) == []
    # The logs went to the per-user log folder instead, and nothing into the real home.
    assert (home.log_dir / "coze_integration.log").is_file()
    assert not (home.root / "home").exists()


def test_chat_keeps_its_conversation_in_the_per_user_data_folder(home: Home) -> None:
    run = kai(home, "chat", "What is a flat white?", extra=UNPACED)
    assert run.returncode == 0, run.stderr
    assert (home.data_dir / "kai-bridge.db").is_file()


def test_doctor_prints_where_state_and_logs_are(home: Home) -> None:
    run = kai(home, "doctor", extra=UNPACED)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"[info] data_dir: {home.data_dir}" in run.stdout
    assert f"[info] log_dir: {home.log_dir}" in run.stdout


def test_configured_folders_are_used_as_given(home: Home) -> None:
    data, logs = home.root / "srv" / "data", home.root / "srv" / "logs"
    run = kai(home, "chat", "What is a flat white?",
              extra={**UNPACED, "KAI_BRIDGE_DATA_DIR": str(data), "KAI_BRIDGE_LOG_DIR": str(logs)})
    assert run.returncode == 0, run.stderr
    assert (data / "kai-bridge.db").is_file()
    assert (logs / "coze_integration.log").is_file()
    assert not home.data_dir.exists()


# ---- what each command imports ------------------------------------------------------------------
_PROBE = textwrap.dedent(
    """
    import json, sys
    from kai_bridge.cli import main
    try:
        main(sys.argv[2:])
    except SystemExit:
        pass
    roots = sorted({name.split(".")[0] for name in sys.modules})
    with open(sys.argv[1], "w") as out:
        json.dump(roots, out)
    """
)


def loaded_after(home: Home, *args: str) -> set[str]:
    report = home.root / "modules.json"
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args],
        cwd=home.cwd, env=home.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert report.exists(), run.stderr
    return set(json.loads(report.read_text()))


HTTP_SERVER_STACK = {"starlette", "uvicorn", "sse_starlette"}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["call", "--help"], id="call-help"),
        pytest.param(["keygen", "--out", "KEYS"], id="keygen"),
    ],
)
def test_help_and_keygen_load_neither_the_mcp_sdk_nor_the_http_stack(home: Home, args: list[str]) -> None:
    args = [str(home.root / "keys") if a == "KEYS" else a for a in args]
    loaded = loaded_after(home, *args)
    assert loaded & {"mcp", "mcp_types", *HTTP_SERVER_STACK} == set()
    assert "kai_bridge" in loaded


def test_a_local_call_loads_no_http_server_stack(home: Home) -> None:
    loaded = loaded_after(home, "call", "coffee_knowledge_query", '{"query": "espresso"}')
    assert loaded & {"mcp", *HTTP_SERVER_STACK} == set()
    assert "kai_bridge" in loaded


def test_a_call_that_talks_to_coze_starts_the_embedded_sandbox_when_it_needs_it(home: Home) -> None:
    run = kai(home, "call", "send_message", '{"message": "What is a flat white?"}', extra=UNPACED)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["chat_id"]
    assert "flat white" in result["answer"].lower()
    assert "sandbox listening on http://127.0.0.1:" in run.stderr


# ---- call sees the upstream KAI servers ---------------------------------------------------------
def _upstream_env() -> dict[str, str]:
    upstreams = [{"name": "kai", "command": [sys.executable, str(FIXTURE_SERVER), "stdio"]}]
    return {"KAI_BRIDGE_UPSTREAMS": json.dumps(upstreams)}


def test_call_reaches_a_tool_of_a_configured_upstream(home: Home) -> None:
    run = kai(home, "call", "kai.coffee_knowledge_query", '{"query": "Yirgacheffe"}', extra=_upstream_env())
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"answer": "KAI fixture answer about Yirgacheffe", "source": "kai-fixture"}


def test_call_list_shows_the_upstream_tools_next_to_the_local_ones(home: Home) -> None:
    run = kai(home, "call", "--list", extra=_upstream_env())
    assert run.returncode == 0, run.stderr
    names = {line.split("\t")[0] for line in run.stdout.splitlines()}
    assert {"coffee_knowledge_query", "send_message", "kai.coffee_knowledge_query", "kai.echo"} <= names


def test_call_of_an_upstream_that_cannot_start_says_so_within_the_wait(home: Home) -> None:
    broken = json.dumps([{"name": "kai", "command": [str(home.root / "no-such-kai-server")]}])
    run = kai(home, "call", "--wait", "2", "kai.echo", '{"text": "x"}', extra={"KAI_BRIDGE_UPSTREAMS": broken})
    assert run.returncode == 1
    assert "upstream KAI server 'kai' is not connected after 2 s" in run.stderr
    assert "command not found" in run.stderr
    assert "Traceback" not in run.stderr


# ---- the embedded sandbox streams at a Coze-like pace by default ------------------------------
async def test_send_message_over_mcp_streams_in_several_progress_notifications_by_default(home: Home) -> None:
    params = StdioServerParameters(
        command=COMMAND[0], args=[*COMMAND[1:], "stdio", "--no-sidecar"], env=home.env, cwd=str(home.cwd)
    )
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    with anyio.fail_after(90):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            sent = await session.call_tool(
                "send_message", {"message": "What is a siphon brewer?"}, progress_callback=on_progress
            )
    assert sent.structured_content is not None
    assert len(deltas) >= 5, deltas
    assert "".join(deltas) == sent.structured_content["answer"]
