"""Fixtures for the deployment artifacts' tests: fresh copies of the files, test-time secret values."""

from __future__ import annotations

import secrets

import pytest

from kai_bridge.keys import generate_key_pair
from tests.manifests.checks import Bundle, Dockerfile, load_bundle, load_dockerfile


@pytest.fixture
def bundle() -> Bundle:
    return load_bundle()


@pytest.fixture
def dockerfile() -> Dockerfile:
    return load_dockerfile()


@pytest.fixture(scope="session")
def secret_values() -> dict[str, str]:
    """What an operator would put in the Secret, made now: nothing real is ever in the repo."""
    pair = generate_key_pair()
    return {
        "KAI_BRIDGE_COZE_APP_ID": "1150000000000000001",
        "KAI_BRIDGE_COZE_KID": pair.kid,
        "coze_private_key.pem": pair.private_pem.decode(),
        "KAI_BRIDGE_MCP_AUTH_TOKEN": secrets.token_hex(32),
        "KAI_BRIDGE_STORE_URL": f"postgresql://kai_bridge:{secrets.token_hex(8)}@postgres:5432/kai_bridge",
    }
