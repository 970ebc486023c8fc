"""Subject-level train/val/test splits: the MUG paper's lists, or a seeded split by fractions.

A subject is never in two splits, so no face seen in training is evaluated on.
"""

from __future__ import annotations

import re

import numpy as np

SPLIT_NAMES = ("train", "val", "test")

# Subject ids of the released FRGAN preprocessing (reference spec, section 4).
MUG_PAPER_SPLITS = {
    "train": "001 007 008 014 020 021 030 033 037 040 044 048 060 063 066 072 075 078 083".split(),
    "val": "006 010 013 017 027 031 032 034 038 042 045 052 061 064 070 073 076 079 084".split(),
    "test": "028 036 039 043 046 055 062 065 071 074 077 082".split(),
}


def subject_number(subject: str) -> int | None:
    """The numeric id of a subject folder name ('001', 's001', 'subject_1' -> 1), or None."""
    digits = re.findall(r"\d+", subject)
    return int(digits[-1]) if digits else None


def paper_split(subjects: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Assign subjects to the MUG paper's splits by numeric id.

    Returns (split -> subjects, subjects in none of the paper's lists).
    """
    by_number = {int(s): name for name, ids in MUG_PAPER_SPLITS.items() for s in ids}
    splits: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    unassigned = []
    for subject in sorted(subjects):
        split = by_number.get(subject_number(subject))
        if split is None:
            unassigned.append(subject)
        else:
            splits[split].append(subject)
    return splits, unassigned


def fraction_split(
    subjects: list[str], fractions: dict[str, float], seed: int
) -> dict[str, list[str]]:
    """Shuffle subjects with `seed` and cut them by `fractions` (train/val/test, summing to 1).

    Every split with a positive fraction gets at least one subject when there are enough.
    """
    unknown = set(fractions) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(
            f"Unknown split names {sorted(unknown)} in split fractions; use {SPLIT_NAMES}."
        )
    weights = np.array([float(fractions.get(name, 0.0)) for name in SPLIT_NAMES])
    if (weights < 0).any() or not np.isclose(weights.sum(), 1.0):
        raise ValueError(
            f"Split fractions must be non-negative and sum to 1, got {dict(fractions)}."
        )
    order = sorted(subjects)
    np.random.default_rng(seed).shuffle(order)
    exact = weights * len(order)
    counts = np.floor(exact).astype(int)
    # Largest remainders first, then make sure no split with a positive fraction stays empty.
    for index in np.argsort(-(exact - counts), kind="stable")[: len(order) - counts.sum()]:
        counts[index] += 1
    for index in np.flatnonzero((weights > 0) & (counts == 0)):
        if counts.max() > 1:
            counts[np.argmax(counts)] -= 1
            counts[index] += 1
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return {name: sorted(order[bounds[i] : bounds[i + 1]]) for i, name in enumerate(SPLIT_NAMES)}


def make_split(
    subjects: list[str],
    method: str,
    fractions: dict[str, float],
    seed: int,
    listed: dict[str, str] | None = None,
) -> tuple[dict[str, list[str]], list[str]]:
    """Split by `method` ('paper', 'fractions' or 'listing': `listed` maps subject -> split);
    returns (split -> subjects, unassigned)."""
    if method == "paper":
        return paper_split(subjects)
    if method == "fractions":
        return fraction_split(subjects, fractions, seed), []
    if method == "listing":
        if listed is None:
            raise ValueError(
                "data.prepare.split_method=listing needs a listing with a split column "
                "(data.prepare.videos.listing)"
            )
        splits = {
            name: sorted(s for s in subjects if listed.get(s) == name) for name in SPLIT_NAMES
        }
        return splits, sorted(s for s in subjects if listed.get(s) not in SPLIT_NAMES)
    raise ValueError(f"Unknown split method '{method}'; use 'paper', 'fractions' or 'listing'.")
