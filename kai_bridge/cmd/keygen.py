"""``kai-bridge keygen``: the seed guide's step 1.1.4 (RSA key pair + public key fingerprint).

Writes ``private_key.pem`` (mode 0600) and ``public_key.pem``, prints the fingerprint (the
JWT ``kid``) and what to do next: register the public key in the Coze console, or hand it
to the local sandbox, then set the environment variables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["HELP", "add_arguments", "run"]

HELP = "generate an RSA-2048 key pair for Coze JWT OAuth and print its fingerprint (kid)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("keys"), help="folder for the two PEM files (default: keys)")
    parser.add_argument("--bits", type=int, default=2048, choices=[2048, 3072, 4096], help="RSA key size")


def run(args: argparse.Namespace) -> int:
    from kai_bridge.keys import generate_key_pair, write_key_pair

    pair = generate_key_pair(bits=args.bits)
    private_path, public_path = write_key_pair(pair, args.out)
    out = sys.stdout
    print(pair.kid, file=out)
    guide = f"""
Wrote {private_path} (mode 0600, keep it secret) and {public_path}.
Public key fingerprint (kid): {pair.kid}

Next steps:
  1. Coze console -> OAuth app (service application) -> add the public key {public_path},
     and note the app id and the key id Coze shows (use that as the kid if it differs).
     Or, offline, run the local sandbox with this key:
       kai-bridge sandbox --app-id my-app --public-key {public_path}
  2. Set:
       export KAI_BRIDGE_COZE_API_BASE=https://api.coze.cn   # or https://api.coze.com, or the sandbox URL
       export KAI_BRIDGE_COZE_APP_ID=<app id>
       export KAI_BRIDGE_COZE_KID={pair.kid}
       export KAI_BRIDGE_COZE_PRIVATE_KEY_PATH={private_path.resolve()}
  3. Check: kai-bridge token --validate
"""
    # The kid alone on stdout's first line keeps the command scriptable; the guide goes to stderr.
    print(guide.strip("\n"), file=sys.stderr)
    return 0
