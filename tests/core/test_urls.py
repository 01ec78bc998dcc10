"""URL redaction: whatever a URL carries as a credential is masked, the rest stays recognisable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kai_bridge.urls import redact_url, redact_urls

# Distinctive values (a "Z" no host, scheme or key below contains), so finding one means a leak.
secret_values = st.from_regex(r"Z[A-Za-z0-9._~-]{5,20}", fullmatch=True)
hosts = st.sampled_from(["api.coze.cn", "127.0.0.1:8080", "[::1]:9000", "kai.example.com"])
keys = st.sampled_from(["access_token", "sig", "api_key", "page", "x"])
users = st.from_regex(r"u[a-y0-9]{2,8}", fullmatch=True)  # kept when a password follows: no "Z" in them


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("https://api.coze.cn", "https://api.coze.cn", id="plain"),
        pytest.param("http://u:pw@h:1/p", "http://u:***@h:1/p", id="password"),
        pytest.param("https://tok3n@h/p", "https://***@h/p", id="lone-user-name"),
        pytest.param("https://h/p?access_token=t&page=2", "https://h/p?access_token=***&page=***", id="query"),
        pytest.param("https://h/p?a=&flag", "https://h/p?a=&***", id="empty-value-and-bare-key"),
        pytest.param("https://h/cb#access_token=t", "https://h/cb#***", id="fragment"),
        pytest.param("http://u:p@ss@h/", "http://u:***@h/", id="at-sign-in-password"),
        pytest.param("http://[::1/x", "<unparseable URL>", id="unparseable"),
        pytest.param("sqlite:///data/kb.db", "sqlite:///data/kb.db", id="no-authority"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(user=users, password=secret_values, host=hosts, key=keys, value=secret_values, frag=secret_values)
def test_no_credential_survives_redaction(user: str, password: str, host: str, key: str, value: str, frag: str) -> None:
    for url in (
        f"https://{user}:{password}@{host}/mcp?{key}={value}#{frag}",
        f"http://{value}@{host}/?{key}={value}",
        f"https://{host}/v1?{key}={value}&other={value}",
    ):
        shown = redact_url(url)
        assert password not in shown
        assert value not in shown
        assert frag not in shown
        assert host in shown  # still recognisable


@given(user=users, password=secret_values, host=hosts, before=st.sampled_from(["", "GET ", "url='", '"']))
def test_every_url_inside_a_text_is_redacted(user: str, password: str, host: str, before: str) -> None:
    text = f"{before}http://{user}:{password}@{host}/mcp and then {before}https://{host}/?t={password} end"
    shown = redact_urls(text)
    assert password not in shown
    assert shown.endswith(" end")
    assert f"http://{user}:***@{host}/mcp" in shown


def test_a_text_without_urls_is_returned_unchanged() -> None:
    text = "user:password@host is not a URL without a scheme; a=b&c=d neither"
    assert redact_urls(text) is text
