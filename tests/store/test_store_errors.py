"""Broken URLs and unreachable databases give a StoreError that is safe to show: no password."""

from __future__ import annotations

import traceback

import pytest

from kai_bridge.errors import StoreError
from kai_bridge.store import open_store, redact_url

SECRET = "hunter2-S3cr3t"


def assert_safe(err: StoreError) -> None:
    text = "".join(traceback.format_exception(err))
    assert SECRET not in text
    assert SECRET not in repr(err)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(f"mysql://kai:{SECRET}@db.example/kai", "unsupported store URL", id="unknown-scheme"),
        pytest.param(f"kai:{SECRET}@db", "unsupported store URL", id="no-scheme"),
        pytest.param(f"postgresql://kai:{SECRET}@127.0.0.1:notaport/test", "port", id="bad-port"),
        pytest.param(f"postgresql://kai:{SECRET}@127.0.0.1:5432/test?bogus=1", "invalid", id="bad-option"),
    ],
)
async def test_a_broken_url_gives_a_store_error_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as info:
        async with open_store(url):
            pass
    assert_safe(info.value)


@pytest.mark.postgres
async def test_an_unreachable_database_gives_a_store_error_naming_the_host_without_the_password() -> None:
    url = f"postgresql://kai:{SECRET}@127.0.0.1:1/test"
    with pytest.raises(StoreError, match=r"cannot connect .*127\.0\.0\.1:1.*refused") as info:
        async with open_store(url, connect_timeout=2):
            pass
    assert_safe(info.value)
    assert "kai:***@127.0.0.1:1" in str(info.value)


@pytest.mark.postgres
async def test_a_missing_database_gives_a_store_error_without_the_password(pg_base_url: str) -> None:
    user = pg_base_url.split("://", 1)[1].split("@", 1)[0]
    url = f"postgresql://{user}:{SECRET}@127.0.0.1:5432/kb_no_such_database"
    with pytest.raises(StoreError, match=r"kb_no_such_database.*does not exist") as info:
        async with open_store(url):
            pass
    assert_safe(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db", id="password"),
        pytest.param("postgresql://u@h/db", "postgresql://***@h/db", id="lone-user-name-may-be-a-token"),
        pytest.param("sqlite:///data/x.db", "sqlite:///data/x.db", id="sqlite"),
        pytest.param("postgresql://:pw@h/db?sslmode=require", "postgresql://:***@h/db?sslmode=***", id="query"),
        pytest.param("postgresql://h/db?password=pw", "postgresql://h/db?password=***", id="password-in-query"),
    ],
)
def test_redact_url_masks_the_password_and_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown
