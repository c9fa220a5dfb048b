"""sft-curation: turn raw instruction/chat data into a curated SFT dataset.

Library entry points::

    from curation.config import CurateConfig, load_config
    from curation.run.pipeline import run_curation
    from curation.io.reader import read_source
    from curation.stages import build_map_stages
"""

__version__ = "0.1.0"
