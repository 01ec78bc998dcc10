"""The PostgreSQL tests never skip silently under CI."""

from __future__ import annotations

import pytest

from tests.store.conftest import unreachable


def test_without_the_server_the_postgres_tests_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI these tests must run"):
        unreachable("connection refused")


def test_without_the_server_the_postgres_tests_skip_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="connection refused"):
        unreachable("connection refused")
