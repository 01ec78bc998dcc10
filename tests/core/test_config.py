"""Settings: sources, precedence, and errors a person can act on (without echoing secrets)."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest

from kai_bridge.cmd import sandbox as sandbox_cmd
from kai_bridge.config import check_host_resolves, load_settings
from kai_bridge.errors import ConfigError
from kai_bridge.keys import generate_key_pair, write_key_pair
from kai_bridge.logs import redact


def test_defaults_use_the_embedded_sandbox() -> None:
    settings = load_settings(environ={})
    assert settings.uses_sandbox
    assert settings.auth_mode == "sandbox"
    assert settings.server_port == 8080
    assert settings.coze_max_connections == 100
    assert settings.coze_timeout == 30.0
    assert settings.sandbox_stream_delay > 0  # paced like Coze unless a benchmark says 0


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG rules are the Linux ones")
def test_state_and_logs_default_to_the_per_user_xdg_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = load_settings(environ={})
    assert settings.data_dir == tmp_path / "share" / "kai-bridge"
    assert settings.log_dir == tmp_path / "state" / "kai-bridge" / "log"
    assert settings.effective_store_url() == f"sqlite:///{tmp_path}/share/kai-bridge/kai-bridge.db"


def test_configured_data_and_log_dirs_win_over_the_per_user_ones() -> None:
    settings = load_settings(environ={"KAI_BRIDGE_DATA_DIR": "/srv/kai/data", "KAI_BRIDGE_LOG_DIR": "/var/log/kai"})
    assert settings.data_dir == Path("/srv/kai/data")
    assert settings.log_dir == Path("/var/log/kai")


def test_the_embedded_sandbox_pace_matches_the_standalone_sandbox_default() -> None:
    assert load_settings(environ={}).sandbox_stream_delay * 1000 == pytest.approx(sandbox_cmd.DEFAULT_CHUNK_DELAY_MS)


def test_environment_overrides_toml_file_and_overrides_win(tmp_path: Path) -> None:
    config = tmp_path / "kai.toml"
    config.write_text('server_port = 9001\nlog_level = "WARNING"\nmcp_allowed_hosts = ["a.example:*"]\n')
    settings = load_settings(
        config_file=config,
        environ={"KAI_BRIDGE_SERVER_PORT": "9002", "KAI_BRIDGE_MCP_ALLOWED_ORIGINS": "https://a.example, https://b"},
        overrides={"log_level": "ERROR", "debug": None},
    )
    assert settings.server_port == 9002
    assert settings.log_level == "ERROR"
    assert settings.mcp_allowed_hosts == ["a.example:*"]
    assert settings.mcp_allowed_origins == ["https://a.example", "https://b"]


def test_config_file_can_be_named_by_environment(tmp_path: Path) -> None:
    config = tmp_path / "kai.toml"
    config.write_text("server_port = 9100\n")
    assert load_settings(environ={"KAI_BRIDGE_CONFIG": str(config)}).server_port == 9100


def test_upstreams_parse_from_json_environment() -> None:
    settings = load_settings(
        environ={"KAI_BRIDGE_UPSTREAMS": '[{"name": "kai", "url": "http://127.0.0.1:9/mcp", "api_key": "k-123456"}]'}
    )
    assert settings.upstreams[0].name == "kai"
    assert settings.upstreams[0].api_key is not None
    assert "k-123456" not in repr(settings.upstreams[0])


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        pytest.param({"KAI_BRIDGE_COZE_API_BASE": "api.coze.cn"}, "must be an http(s) URL", id="base-not-url"),
        pytest.param({"KAI_BRIDGE_SERVER_PORT": "eighty"}, "server_port", id="port-not-int"),
        pytest.param({"KAI_BRIDGE_NOPE": "1"}, "unknown kai-bridge environment variable", id="unknown-var"),
        pytest.param({"KAI_BRIDGE_LOG_JSON": "maybe"}, "must be true or false", id="bad-bool"),
        pytest.param(
            {"KAI_BRIDGE_COZE_APP_ID": "1", "KAI_BRIDGE_COZE_API_BASE": "https://api.coze.cn"},
            "coze_kid is missing",
            id="kid-missing",
        ),
        pytest.param({"KAI_BRIDGE_COZE_PAT": "pat_abcdefgh12345678"}, "coze_api_base is empty", id="no-region"),
        pytest.param({"KAI_BRIDGE_UPSTREAMS": "[{"}, "JSON list", id="bad-upstreams"),
        pytest.param({"KAI_BRIDGE_STORE_URL": "mysql://x"}, "store_url", id="bad-store"),
        pytest.param(
            {"KAI_BRIDGE_COZE_KID": "<the fingerprint keygen printed>"},
            "coze_kid is not a 64-hex fingerprint (got '<the fingerprint keygen printed>')",
            id="kid-placeholder",
        ),
        pytest.param({"KAI_BRIDGE_COZE_KID": "ab" * 31}, "not a 64-hex fingerprint", id="kid-too-short"),
        pytest.param({"KAI_BRIDGE_SANDBOX_STREAM_DELAY": "-1"}, "sandbox_stream_delay", id="negative-pace"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_setting(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    assert fragment in str(info.value)


def test_a_placeholder_kid_is_refused_before_the_key_file_is_even_read(tmp_path: Path) -> None:
    env = _jwt_env(tmp_path, kid="<the fingerprint keygen printed>")
    env["KAI_BRIDGE_COZE_PRIVATE_KEY_PATH"] = str(tmp_path / "no-such-key.pem")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert "not a 64-hex fingerprint" in str(info.value)
    assert "no-such-key.pem" not in str(info.value)


def test_a_kid_with_spaces_around_it_is_kept_without_them(tmp_path: Path) -> None:
    pair_env = _jwt_env(tmp_path)
    kid = pair_env["KAI_BRIDGE_COZE_KID"]
    assert load_settings(environ={**pair_env, "KAI_BRIDGE_COZE_KID": f"  {kid}\n"}).coze_kid == kid


@pytest.mark.parametrize(
    "host",
    [pytest.param("127.0.0.1", id="ipv4"), pytest.param("::1", id="ipv6"), pytest.param("localhost", id="name")],
)
def test_hosts_that_resolve_pass_the_host_check(host: str) -> None:
    check_host_resolves(host, name="server_host")


def test_a_host_that_does_not_resolve_is_named_as_such() -> None:
    with pytest.raises(ConfigError) as info:
        check_host_resolves("not-a-host.invalid", name="server_host")
    assert "server_host 'not-a-host.invalid' does not resolve" in str(info.value)
    assert "reachable from the network" not in str(info.value)


def test_secret_values_never_appear_in_config_errors() -> None:
    secret = "pat_" + secrets.token_hex(16)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"KAI_BRIDGE_COZE_PAT": secret, "KAI_BRIDGE_COZE_APP_ID": "7"})
    assert secret not in str(info.value)


def _jwt_env(tmp_path: Path, *, kid: str | None = None) -> dict[str, str]:
    pair = generate_key_pair()
    private_path, _ = write_key_pair(pair, tmp_path / "keys")
    return {
        "KAI_BRIDGE_COZE_APP_ID": "1234567890",
        "KAI_BRIDGE_COZE_KID": kid or pair.kid,
        "KAI_BRIDGE_COZE_PRIVATE_KEY_PATH": str(private_path),
        "KAI_BRIDGE_COZE_API_BASE": "https://api.coze.cn/",
    }


def test_jwt_settings_with_matching_key_and_kid_load(tmp_path: Path) -> None:
    settings = load_settings(environ=_jwt_env(tmp_path))
    assert settings.auth_mode == "jwt"
    assert settings.coze_api_base == "https://api.coze.cn"


def test_key_kid_mismatch_is_reported_with_the_actual_fingerprint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=_jwt_env(tmp_path, kid="0" * 64))
    assert "does not match the private key" in str(info.value)


def test_unreadable_private_key_is_reported_with_its_path(tmp_path: Path) -> None:
    env = _jwt_env(tmp_path)
    env["KAI_BRIDGE_COZE_PRIVATE_KEY_PATH"] = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert "missing.pem" in str(info.value)


def test_garbage_private_key_is_reported_without_its_content(tmp_path: Path) -> None:
    env = _jwt_env(tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key at all but secret-ish text")
    env["KAI_BRIDGE_COZE_PRIVATE_KEY_PATH"] = str(bad)
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert "not a readable unencrypted PEM private key" in str(info.value)
    assert "secret-ish" not in str(info.value)


def test_bad_toml_file_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "kai.toml"
    config.write_text("server_port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=config, environ={})


# ---- security findings of issue 7 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "problem"),
    [
        pytest.param("http://ops:{s}@api.coze.cn", "a user name or password", id="userinfo"),
        pytest.param("https://{s}@api.coze.cn", "a user name or password", id="lone-user-name"),
        pytest.param("https://api.coze.cn/?access_token={s}", "a query string", id="query-token"),
        pytest.param("https://api.coze.cn?", "a query string", id="empty-query"),
        pytest.param("https://api.coze.cn/#{s}", "a fragment", id="fragment"),
        pytest.param("http://u:{s}@api.coze.cn/?t={s}#{s}", "a user name or password and a query string and a fragment",
                     id="all-three"),
    ],
)
def test_credentials_in_the_coze_api_base_are_refused_without_being_echoed(base: str, problem: str) -> None:
    secret = "Z" + secrets.token_hex(8)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"KAI_BRIDGE_COZE_API_BASE": base.format(s=secret)}, check_files=False)
    message = str(info.value)
    assert "coze_api_base must be a plain base URL" in message
    assert problem in message
    assert secret not in message
    assert "': remove it" in redact(message)  # the CLI prints it through the scrubber: still readable


def test_a_malformed_upstream_url_is_reported_without_its_credentials() -> None:
    secret = "Z" + secrets.token_hex(8)
    upstreams = f'[{{"name": "kai", "url": "ftp://ops:{secret}@kai.example.com/mcp?key={secret}"}}]'
    with pytest.raises(ConfigError, match="must be an http") as info:
        load_settings(environ={"KAI_BRIDGE_UPSTREAMS": upstreams}, check_files=False)
    assert secret not in str(info.value)


def test_an_upstream_url_may_carry_userinfo_for_http_basic() -> None:
    upstreams = '[{"name": "kai", "url": "https://ops:pw@kai.example.com/mcp"}]'
    settings = load_settings(environ={"KAI_BRIDGE_UPSTREAMS": upstreams}, check_files=False)
    assert settings.upstreams[0].url == "https://ops:pw@kai.example.com/mcp"


TOKEN_SETTINGS = [
    pytest.param("KAI_BRIDGE_MCP_AUTH_TOKEN", "mcp_auth_token", id="mcp-token"),
    pytest.param("KAI_BRIDGE_ADMIN_TOKEN", "admin_token", id="admin-token"),
    pytest.param("KAI_BRIDGE_COZE_PAT", "coze_pat", id="coze-pat"),
    pytest.param("KAI_BRIDGE_UPSTREAMS", "api_key", id="upstream-api-key"),
]


def _token_env(variable: str, value: str) -> dict[str, str]:
    if variable == "KAI_BRIDGE_UPSTREAMS":
        return {variable: json.dumps([{"name": "kai", "url": "http://127.0.0.1:1/mcp", "api_key": value}])}
    env = {variable: value}
    if variable == "KAI_BRIDGE_COZE_PAT":
        env["KAI_BRIDGE_COZE_API_BASE"] = "https://api.coze.cn"
    return env


@pytest.mark.parametrize(("variable", "field"), TOKEN_SETTINGS)
@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        pytest.param("                    ", "only whitespace", id="spaces"),
        pytest.param("\t\n", "only whitespace", id="tab-newline"),
        pytest.param("  {t}", "starts or ends with whitespace", id="leading"),
        pytest.param("{t}\n", "starts or ends with whitespace", id="trailing-newline"),
        pytest.param("{t} {t}", "contains whitespace", id="inner-space"),
    ],
)
def test_a_token_setting_of_whitespace_or_padded_with_it_is_refused(
    variable: str, field: str, shape: str, problem: str
) -> None:
    token = "Z" + secrets.token_hex(12)
    with pytest.raises(ConfigError) as info:
        load_settings(environ=_token_env(variable, shape.format(t=token)), check_files=False)
    message = str(info.value)
    assert field in message
    assert problem in message
    assert token not in message
    assert "[REDACTED]" not in redact(message)  # the CLI prints it through the scrubber: still readable


@pytest.mark.parametrize(("variable", "field"), TOKEN_SETTINGS)
def test_an_empty_token_setting_means_unset(variable: str, field: str) -> None:
    settings = load_settings(environ=_token_env(variable, ""), check_files=False)
    value = settings.upstreams[0].api_key if field == "api_key" else getattr(settings, field)
    assert value is None


def test_a_short_admin_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="admin_token: the value is too short"):
        load_settings(environ={"KAI_BRIDGE_ADMIN_TOKEN": "short-token"}, check_files=False)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        pytest.param("KAI_BRIDGE_MCP_ALLOWED_HOSTS", "https://mcp.example.com", "mcp_allowed_hosts entry", id="url-as-host"),
        pytest.param("KAI_BRIDGE_MCP_ALLOWED_HOSTS", "*.example.com", "mcp_allowed_hosts entry", id="wildcard-name"),
        pytest.param("KAI_BRIDGE_MCP_ALLOWED_HOSTS", "mcp.example.com:http", "mcp_allowed_hosts entry", id="named-port"),
        pytest.param("KAI_BRIDGE_MCP_ALLOWED_ORIGINS", "app.example.com", "mcp_allowed_origins entry", id="no-scheme"),
        pytest.param("KAI_BRIDGE_MCP_ALLOWED_ORIGINS", "https://app.example.com/", "mcp_allowed_origins entry",
                     id="trailing-slash"),
        pytest.param("KAI_BRIDGE_MCP_MAX_SESSIONS", "0", "mcp_max_sessions", id="no-sessions"),
        pytest.param("KAI_BRIDGE_MCP_SESSION_IDLE_TIMEOUT", "0", "mcp_session_idle_timeout", id="zero-idle"),
        pytest.param("KAI_BRIDGE_MCP_SESSION_IDLE_TIMEOUT", "inf", "mcp_session_idle_timeout", id="infinite-idle"),
    ],
)
def test_bad_http_security_settings_are_refused_naming_the_setting(variable: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(environ={variable: value}, check_files=False)


def test_allowlist_entries_in_every_accepted_form_load() -> None:
    settings = load_settings(
        environ={
            "KAI_BRIDGE_MCP_ALLOWED_HOSTS": "mcp.example.com,mcp.example.com:8443,kai:*,[::1]:9000,10.0.0.5:*",
            "KAI_BRIDGE_MCP_ALLOWED_ORIGINS": "https://app.example.com,http://dev.example.com:*,vscode-webview://abc",
        },
        check_files=False,
    )
    assert len(settings.mcp_allowed_hosts) == 5
    assert len(settings.mcp_allowed_origins) == 3
