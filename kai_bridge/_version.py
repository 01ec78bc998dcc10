"""The version of kai-bridge, written once (pyproject.toml and the package read it from here)."""

__version__ = "0.1.0"
