"""Helpers shared by the CLI subcommands."""

from __future__ import annotations

import argparse
from typing import Any

from kai_bridge.config import Settings, load_settings

__all__ = ["settings_from_args"]


def settings_from_args(args: argparse.Namespace, *, check_files: bool = True, **overrides: Any) -> Settings:
    """Load settings from ``--config``, the environment and the given overrides (None values ignored)."""
    merged: dict[str, Any] = {}
    if getattr(args, "debug", False):
        merged["debug"] = True
        merged["log_level"] = "DEBUG"
    elif getattr(args, "log_level", None):
        merged["log_level"] = args.log_level
    if getattr(args, "log_json", False):
        merged["log_json"] = True
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return load_settings(config_file=getattr(args, "config", None), overrides=merged, check_files=check_files)
