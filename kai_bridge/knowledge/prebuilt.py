"""The prebuilt index: the built :class:`Index` saved in a cache directory, keyed by what built it.

Building the index (analysing ~300 KB of bilingual text, parsing every body into sentences and
lists) takes a few hundred milliseconds, paid again by every process: a one-shot ``kai-bridge
call`` would spend most of its time there. So the first process saves :meth:`Index.state` to
``<cache_dir>/knowledge-index-<key>.marshal`` and later ones load it (tens of milliseconds).

The key is a SHA-256 over everything the state depends on: the article files, the data files
the index reads (synonyms, the Traditional -> Simplified table), the source of the modules
that build it, :data:`FORMAT`, and the Python version (``marshal``'s format is version
specific). Change any of them and the key changes: a stale index is never loaded, it is
rebuilt and saved under the new key (older ``knowledge-index-*`` files are removed).

Format: ``marshal``, chosen by measurement (bench_knowledge.py prints the comparison): it
loads the state in ~20 ms where ``pickle`` takes about as long and JSON (which also has to
turn lists back into tuples and sets) several times longer. The trade-off: like ``pickle``,
``marshal`` must not read untrusted data (a crafted file can crash the interpreter). The file
is written only by this module, in the user's own data directory, under a key that only
names content we built; the file carries a SHA-256 of its payload, checked before
unmarshalling, so a truncated or corrupted file is rebuilt instead of read. Anyone able to
write a crafted file there can already change the user's configuration and keys, so the
cache adds no new way in. Any failure (unreadable, corrupt, read-only directory) falls back
to building in memory and is logged, never raised.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import marshal
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import astuple
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from kai_bridge.knowledge.corpus import Article
from kai_bridge.knowledge.index import Index, IndexState

__all__ = ["FORMAT", "index_key", "load_index"]

log = logging.getLogger(__name__)

FORMAT = 3  # bump when the state's layout changes in a way the source hash would not show
_MAGIC = b"KBIX"
_PREFIX = "knowledge-index-"
_SUFFIX = ".marshal"
# The modules whose code shapes the state, and the data files it reads.
_SOURCES = ("corpus.py", "text.py", "phrases.py", "facts.py", "structure.py", "index.py", "prebuilt.py")
_DATA = ("synonyms.json", "t2s.json")


def _corpus_files(root: Traversable | Path, prefix: str = "") -> list[tuple[str, Traversable | Path]]:
    found: list[tuple[str, Traversable | Path]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(_corpus_files(entry, f"{name}/"))
        elif entry.name.endswith(".toml"):
            found.append((name, entry))
    return found


def index_key(corpus: Traversable | Path) -> str:
    """The cache key of the index built from the articles under ``corpus`` (module docstring)."""
    digest = hashlib.sha256()
    digest.update(f"format={FORMAT};python={sys.version_info[0]}.{sys.version_info[1]};marshal={marshal.version}".encode())
    package = resources.files("kai_bridge.knowledge")
    for name in _SOURCES:
        digest.update(b"\0src:" + name.encode() + b"\0" + package.joinpath(name).read_bytes())
    for name in _DATA:
        digest.update(b"\0data:" + name.encode() + b"\0" + package.joinpath("data", name).read_bytes())
    for name, entry in _corpus_files(corpus):
        digest.update(b"\0article:" + name.encode() + b"\0" + entry.read_bytes())
    return digest.hexdigest()[:32]


def _read(path: Path) -> IndexState | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("knowledge index cache %s unreadable (%s); building the index", path, exc)
        return None
    if len(data) < 36 or data[:4] != _MAGIC or hashlib.sha256(data[36:]).digest() != data[4:36]:
        log.warning("knowledge index cache %s is damaged; building the index again", path)
        return None
    try:
        with _no_gc():
            state = marshal.loads(data[36:])  # noqa: S302 - our own file, checksummed (module docstring)
    except (EOFError, ValueError, TypeError) as exc:
        log.warning("knowledge index cache %s does not load (%s); building the index again", path, exc)
        return None
    return state if isinstance(state, dict) else None


def _write(directory: Path, path: Path, state: IndexState) -> None:
    payload = marshal.dumps(state)
    data = _MAGIC + hashlib.sha256(payload).digest() + payload
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".knowledge-index-", dir=directory)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)  # atomic: a concurrent reader sees the old file or the new
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        for old in directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()
    except OSError as exc:
        log.warning("knowledge index cache not saved in %s (%s); the next process builds it again", directory, exc)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The collector paused while the state is read, and what was read moved to the permanent
    generation (``gc.freeze``): unmarshalling creates a million long-lived objects, and the
    collections they would trigger (now and each time the older generations are scanned)
    cost several times the load itself and find no garbage. The runtime freezes its
    long-lived objects the same way once everything is built."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def load_index(
    *, corpus: Traversable | Path, cache_dir: Path | None, read_articles: Callable[[], list[Article]]
) -> tuple[list[Article], Index]:
    """The articles under ``corpus`` and their index: loaded from ``cache_dir`` when a state
    built from the same inputs is there (the articles with it: no TOML to parse), otherwise
    ``read_articles()`` and built, and saved there. ``cache_dir=None`` builds in memory only."""
    if cache_dir is None:
        articles = read_articles()
        return articles, Index(articles)
    try:
        key = index_key(corpus)
    except OSError as exc:
        log.warning("knowledge index cache key not computed (%s); building the index", exc)
        articles = read_articles()
        return articles, Index(articles)
    directory = Path(cache_dir)
    path = directory / f"{_PREFIX}{key}{_SUFFIX}"
    state = _read(path)
    if state is not None:
        try:
            with _no_gc():
                articles = [Article(*row) for row in state["articles"]]  # type: ignore[attr-defined]
                return articles, Index(articles, state=state)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            log.warning("knowledge index cache %s does not fit (%s); building the index again", path, exc)
    articles = read_articles()
    index = Index(articles)
    state = index.state()
    state["articles"] = [astuple(article) for article in articles]
    _write(directory, path, state)
    return articles, index
