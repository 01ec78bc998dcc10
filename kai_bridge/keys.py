"""RSA key helpers for Coze JWT OAuth: generate a pair, load a private key, compute the kid.

The kid recipe is the seed guide's: SHA-256 over the DER-encoded public key, lower-case hex
(``openssl rsa -pubin -outform DER | openssl dgst -sha256``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kai_bridge.errors import ConfigError

__all__ = ["KeyPair", "fingerprint", "generate_key_pair", "load_private_key", "write_key_pair"]


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes
    kid: str


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """SHA-256 hex of the DER (SubjectPublicKeyInfo) public key: usable as the JWT ``kid``."""
    der = public_key.public_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return hashlib.sha256(der).hexdigest()


def generate_key_pair(*, bits: int = 2048) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return KeyPair(private_pem=private_pem, public_pem=public_pem, kid=fingerprint(key.public_key()))


def write_key_pair(pair: KeyPair, out_dir: Path) -> tuple[Path, Path]:
    """Write ``private_key.pem`` (mode 0600) and ``public_key.pem``; refuse to overwrite a key."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / "private_key.pem"
    public_path = out_dir / "public_key.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(f"{path} already exists; choose another --out folder or remove it first")
    private_path.touch(mode=0o600)
    private_path.write_bytes(pair.private_pem)
    public_path.write_bytes(pair.public_pem)
    return private_path, public_path


def load_private_key(pem: bytes, *, source: str) -> rsa.RSAPrivateKey:
    """Parse a PEM RSA private key; ``source`` names where it came from for the error message."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"the Coze private key from {source} is not a readable unencrypted PEM private key "
            "(expected a PEM file starting with a '-----BEGIN ... PRIVATE KEY-----' line)"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"the Coze private key from {source} is not an RSA key; Coze JWT OAuth needs RS256")
    return key
