"""The synthetic set's files in MUG's layout, named once: the writer writes them, the previews
read them.

    <root>/s001/happiness/take000/img_0000.jpg ... + ground_truth.npz
    <root>/dataset_card.json           (written last: its presence means "complete")
    <root>/.synth_in_progress.json     (while generating: the config, for resuming)
"""

from __future__ import annotations

CARD_NAME = "dataset_card.json"
IN_PROGRESS_NAME = ".synth_in_progress.json"
GROUND_TRUTH_NAME = "ground_truth.npz"
FRAME_GLOB = "img_*.jpg"
LAYOUT = "<root>/<subject>/<expression>/take<NNN>/img_<NNNN>.jpg + ground_truth.npz"


def take_name(take: int) -> str:
    return f"take{take:03d}"


def frame_name(index: int) -> str:
    return f"img_{index:04d}.jpg"
