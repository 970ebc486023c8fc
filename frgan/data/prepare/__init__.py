"""Raw folder -> WebDataset shards + manifest.json.

Per take: load frames -> validate/repair -> landmarks -> crop -> resize -> encode. A take
that cannot be used is skipped with its reason; one bad take never stops the run. Takes
are assigned to shards before any work starts, so a re-run finds the same shards, keeps
the finished ones (checked by sha256) and only redoes the rest.

- settings.py: PrepareSettings, everything that decides the shards' content
- takes.py:    one raw take (a MUG-layout frame folder) -> shard members
- pool.py:     the takes run in this process or in a pool of worker processes
- plan.py:     subjects to splits, takes to shards, finished shards' part records, manifest
- run.py:      prepare_dataset, the whole folder
"""

from frgan.data.prepare.plan import check_same_settings
from frgan.data.prepare.run import prepare_dataset, print_summary
from frgan.data.prepare.settings import PrepareSettings, check_image_size

__all__ = [
    "PrepareSettings",
    "check_image_size",
    "check_same_settings",
    "prepare_dataset",
    "print_summary",
]
