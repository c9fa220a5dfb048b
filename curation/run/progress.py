"""Progress bars, with tqdm imported only when a bar is made.

``tqdm.auto`` (notebook widgets under Jupyter, text otherwise) imports asyncio and ssl: ~40 ms,
which a map worker, which never shows a bar, would pay on its start-up path if the engine
imported it at module level.
"""

from __future__ import annotations


def progress_bar(**kwargs):
    from tqdm.auto import tqdm

    return tqdm(**kwargs)
