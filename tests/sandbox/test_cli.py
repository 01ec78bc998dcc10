"""``kai-bridge sandbox``: flag handling, and the real command serving until SIGINT."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from kai_bridge.cmd import sandbox as sandbox_cmd
from kai_bridge.errors import ConfigError
from kai_bridge.keys import KeyPair, write_key_pair
from tests.sandbox.support import make_jwt, token_body


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sandbox_cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_build_the_config(tmp_path: Path, key_pair: KeyPair) -> None:
    _private, public = write_key_pair(key_pair, tmp_path)

    config = sandbox_cmd.build_config(
        parse(
            "--app-id", "app-1", "--public-key", str(public),
            "--pat", "p1", "--pat", "p2",
            "--admin-token", "adm", "--seed", "3", "--chunk-delay-ms", "0",
            "--fault", '{"route": "chat.create", "error_rate": 0.25}',
        )
    )  # fmt: skip

    assert [app_id for app_id, _pem in config.apps] == ["app-1"]
    assert list(config.pats) == ["p1", "p2"]
    assert config.admin_enabled is True
    assert config.seed == 3
    assert config.stream_chunk_delay == 0
    assert config.faults[0].error_rate == 0.25


@pytest.mark.parametrize(
    ("argv", "contains"),
    [
        pytest.param(["--app-id", "a"], "one --public-key for each --app-id", id="unpaired"),
        pytest.param(["--app-id", "a", "--public-key", "/nonexistent.pem"], "cannot read", id="missing-file"),
        pytest.param(["--fault", "[1]"], "bad --fault", id="fault-not-object"),
        pytest.param(["--fault", '{"route": "*", "error_rate": 3}'], "error_rate", id="fault-bad-rate"),
    ],
)
def test_bad_flags_are_config_errors(argv: list[str], contains: str) -> None:
    with pytest.raises(ConfigError, match=contains):
        sandbox_cmd.build_config(parse(*argv))


def test_a_private_key_is_not_accepted_as_the_public_key(tmp_path: Path, key_pair: KeyPair) -> None:
    private, _public = write_key_pair(key_pair, tmp_path)

    with pytest.raises(ConfigError, match="not a PEM RSA public key"):
        sandbox_cmd.build_config(parse("--app-id", "a", "--public-key", str(private)))


@pytest.mark.e2e
def test_the_command_prints_its_ids_serves_and_stops_on_sigint(tmp_path: Path, key_pair: KeyPair) -> None:
    _private, public = write_key_pair(key_pair, tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable, "-c", "import sys; from kai_bridge.cli import main; sys.exit(main())",
            "sandbox", "--port", "0", "--app-id", "cli-app", "--public-key", str(public), "--pat", "cli-pat",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        base_url = lines[0].split()[-1]
        host_port = base_url.split("://", 1)[1]
        with httpx.Client(base_url=base_url) as http:
            issued = http.post(
                "/api/permission/oauth2/token",
                json=token_body(),
                headers={"Authorization": f"Bearer {make_jwt(key_pair, aud=host_port, iss='cli-app')}"},
            )
            bots = http.get(
                "/v1/bots", params={"workspace_id": "7390000000000000100"}, headers={"Authorization": "Bearer cli-pat"}
            )
        proc.send_signal(signal.SIGINT)
        rest, _err = proc.communicate(timeout=20)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert base_url.startswith("http://127.0.0.1:")
    assert "7390000000000000001" in text
    assert "7390000000000000002" in text
    assert f"cli-app  kid {key_pair.kid}" in text
    assert "cli-pat" not in text + rest  # secrets are never echoed
    assert issued.status_code == 200
    assert [b["name"] for b in bots.json()["data"]["items"]] == ["Coffee Expert", "Coffee Expert (local plugin)"]
    assert proc.returncode == 0
