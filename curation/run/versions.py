"""Installed package versions, from the module when it is already imported.

``importlib.metadata.version`` parses the package's METADATA file (transformers' embeds its
whole README: ~10 ms each, more on a busy machine), and the manifest asks for six packages at the
end of every run. A module already in ``sys.modules`` carries the same version in
``__version__``.
"""

from __future__ import annotations

import sys
from importlib import metadata


def package_version(dist: str) -> str:
    """The installed version of distribution ``dist``; PackageNotFoundError if it is absent."""
    module = sys.modules.get(dist.replace("-", "_"))
    version = getattr(module, "__version__", None)
    if isinstance(version, str) and version:
        return version
    return metadata.version(dist)
