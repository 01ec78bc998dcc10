"""``kai-bridge events`` from the shell, as a real process, over the store a server would use."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kai_bridge.cli import main
from kai_bridge.store import open_store
from tests.webhooks.support import Door, coze_body, open_door, seed_body

pytestmark = pytest.mark.e2e


@dataclass
class Run:
    code: int
    out: str
    err: str


def env_for(db: Path) -> dict[str, str]:
    return {"KAI_BRIDGE_STORE_URL": f"sqlite:///{db}", "KAI_BRIDGE_LOG_DIR": str(db.parent / "logs"),
            "KAI_BRIDGE_DATA_DIR": str(db.parent)}


async def events(*args: str, db: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env.update(env_for(db))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "kai_bridge.cli", "events", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    async with open_door(tmp_path) as opened:
        yield opened


async def test_list_prints_json_lines_with_the_documented_fields(door: Door, tmp_path: Path) -> None:
    first = (await door.signed(coze_body("bot.published", event_id="7400000000000000001"))).json()["id"]
    second = (await door.bearer_post(seed_body())).json()["id"]
    await door.service.dispatcher.dispatch_due()
    run = await events("list", "--json", db=tmp_path / "kb.db")
    assert run.code == 0, run.err
    lines = [json.loads(line) for line in run.out.splitlines()]
    assert [line["id"] for line in lines] == [second, first]
    assert set(lines[0]) >= {"id", "event_type", "status", "attempts", "received_at", "dedup_key"}
    assert lines[1]["dedup_key"] == "event_id:7400000000000000001"
    assert {line["status"] for line in lines} == {"done"}
    table = await events("list", db=tmp_path / "kb.db")
    assert "EVENT_TYPE" in table.out
    assert first in table.out
    none_dead = await events("list", "--status", "dead", db=tmp_path / "kb.db")
    assert none_dead.out.strip() == "no webhook events with status dead"


async def test_show_replay_and_purge(door: Door, tmp_path: Path) -> None:
    event_id = (await door.bearer_post(seed_body(message="replay me"))).json()["id"]
    await door.service.dispatcher.dispatch_due()
    db = tmp_path / "kb.db"
    shown = await events("show", event_id, db=db)
    assert shown.code == 0, shown.err
    full = json.loads(shown.out)
    assert full["body"]["data"]["message"] == "replay me"
    assert full["status"] == "done"
    assert "log" in full["result"]["handlers"]

    replayed = await events("replay", event_id, db=db)
    assert replayed.code == 0, replayed.err
    assert "pending again" in replayed.out
    async with open_store(f"sqlite:///{db}") as store:
        again = await store.get_event(event_id=event_id)
    assert again is not None
    assert (again.status, again.attempts, again.result) == ("pending", 0, None)

    kept = await events("purge", "--before", "1d", db=db)
    assert "purged 0" in kept.out
    await door.service.dispatcher.dispatch_due()
    purged = await events("purge", "--before", "2999-01-01", db=db)
    assert "purged 1" in purged.out
    assert (await events("list", "--json", db=db)).out == ""


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        pytest.param(("show", "ev-nope"), 1, "no webhook event 'ev-nope'", id="show-unknown"),
        pytest.param(("replay", "ev-nope"), 1, "no webhook event 'ev-nope'", id="replay-unknown"),
        pytest.param(("purge", "--before", "yesterday-ish"), 2, "neither an age", id="bad-before"),
        pytest.param(("list", "--status", "sleeping"), 2, "invalid choice", id="bad-status"),
        pytest.param((), 2, "ACTION", id="no-action"),
    ],
)
def test_mistakes_get_one_line_and_an_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None,
    args: tuple[str, ...], code: int, fragment: str,
) -> None:
    for name, value in env_for(tmp_path / "kb.db").items():
        monkeypatch.setenv(name, value)
    try:
        got = main(["events", *args])
    except SystemExit as exc:  # argparse's own usage errors
        got = int(exc.code or 0)
    err = capsys.readouterr().err
    assert got == code
    assert fragment in err
    assert "Traceback" not in err
