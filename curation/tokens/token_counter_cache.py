"""The length stage's token counter, built from a spec cached on disk when the tokenizer is a local
folder (the default SmolLM2 tokenizer is one).

Loading a tokenizer through transformers and checking the fast counting paths against it takes
~0.5 s per run, in the main process before any row is read; the counter only needs its
``TokenizerSpec`` (plain data, the results of those checks included). The cache key covers the
folder's files (name, size, modification time), the name the tokenizer was configured by, the
versions of transformers and tokenizers, and the source of the modules that derive the spec: an
edited tokenizer, an upgrade or a code change reads the tokenizer afresh.
"""

from __future__ import annotations

import copy
import hashlib
from importlib import metadata
from pathlib import Path

from curation.run.versions import package_version
from curation.tokens import disk_cache
from curation.tokens.token_counts import TemplateTokenCounter, TokenizerSpec
from curation.tokens.tokenizer import DEFAULT_ALIASES, default_tokenizer_dir, load_tokenizer

_DERIVING_MODULES = ("token_counts.py", "fast_bpe.py", "template_analysis.py", "tokenizer.py", __file__)


def local_folder(name_or_path: str | None) -> Path | None:
    """The folder the tokenizer is read from, or None for a hub id."""
    if name_or_path in DEFAULT_ALIASES:
        return default_tokenizer_dir()
    path = Path(name_or_path)
    return path if path.is_dir() else None


def cache_key(name_or_path: str | None, folder: Path) -> str:
    h = hashlib.sha256(repr(name_or_path).encode())
    h.update(str(folder.resolve()).encode())
    for f in sorted(folder.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    for pkg in ("transformers", "tokenizers", "tiktoken"):
        try:
            h.update(f"{pkg}={package_version(pkg)}".encode())
        except metadata.PackageNotFoundError:
            h.update(pkg.encode())
    here = Path(__file__).parent
    for module in _DERIVING_MODULES:
        h.update((here / module).read_bytes())
    return h.hexdigest()[:32]


def _entry(name_or_path: str | None) -> Path | None:
    folder = local_folder(name_or_path)
    if folder is None:
        return None
    return disk_cache.cache_root() / "token-counter" / f"{cache_key(name_or_path, folder)}.pkl"


def _spec_at(entry: Path | None) -> TokenizerSpec | None:
    spec = disk_cache.load(entry) if entry is not None else None
    return spec if isinstance(spec, TokenizerSpec) else None


def cached_spec(name_or_path: str | None) -> TokenizerSpec | None:
    """The cached spec of this tokenizer, if there is one (nothing is loaded through transformers)."""
    return _spec_at(_entry(name_or_path))


def load_counter(name_or_path: str | None) -> TemplateTokenCounter:
    """A counter for this tokenizer: from the cached spec, or through transformers (then cached)."""
    entry = _entry(name_or_path)
    spec = _spec_at(entry)
    if spec is not None:
        return TemplateTokenCounter(spec=spec)
    counter = TemplateTokenCounter(load_tokenizer(name_or_path))
    if entry is not None:
        disk_cache.store(entry, copy.deepcopy(counter.spec))
    return counter
