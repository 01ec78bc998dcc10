"""Helpers shared by the CLI subcommands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from kai_bridge.config import Settings

__all__ = ["FlagOverrides", "settings_from_args", "write_ready_file"]


class FlagOverrides(TypedDict, total=False):
    """The settings a subcommand's own flags may override (None: the flag was not given)."""

    server_host: str | None
    server_port: int | None
    stdio_sidecar: bool | None
    stdio_sidecar_port: int | None


def settings_from_args(
    args: argparse.Namespace, *, check_files: bool = True, overrides: FlagOverrides | None = None
) -> Settings:
    """Load settings from ``--config``, the environment, the global flags and ``overrides``."""
    from kai_bridge.config import load_settings

    merged: dict[str, Any] = {}
    if getattr(args, "debug", False):
        merged["debug"] = True
        merged["log_level"] = "DEBUG"
    elif getattr(args, "log_level", None):
        merged["log_level"] = args.log_level
    if getattr(args, "log_json", False):
        merged["log_json"] = True
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return load_settings(config_file=getattr(args, "config", None), overrides=merged, check_files=check_files)


def write_ready_file(path: Path, url: str) -> None:
    """Write ``url`` and a newline to ``path`` in one step (a temporary file renamed over it).

    Whoever polls the file sees nothing or the whole line, never a part of it.
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(url + "\n", encoding="utf-8")
    partial.replace(path)
