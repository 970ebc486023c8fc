"""Run the takes in this process or in a pool of worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from frgan.data.layout import Take
from frgan.data.prepare.settings import PrepareSettings
from frgan.data.prepare.takes import TakeProcessor, TakeResult

# ---------------------------------------------------------------- the whole folder

_WORKER_PROCESSOR: TakeProcessor | None = None  # one per pool process (holds the landmark model)


def _init_worker(settings: PrepareSettings) -> None:
    global _WORKER_PROCESSOR
    _WORKER_PROCESSOR = TakeProcessor(settings)


def _process_in_worker(take: Take) -> TakeResult:
    return _WORKER_PROCESSOR(take)


def run_takes(
    takes: list[Take], settings: PrepareSettings, workers: int, progress: bool, console: Console
):
    """Yield TakeResults in the order of `takes`, processing them in `workers` processes."""
    columns = (
        TextColumn("[bold]takes"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("skipped {task.fields[skipped]}"),
        TextColumn("{task.fields[rate]:.1f} takes/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("prepare", total=len(takes), skipped=0, rate=0.0)
        start, skipped = time.perf_counter(), 0
        if workers and workers > 0 and takes:
            # spawn: landmark backends (torch, mediapipe) are not fork-safe once initialised
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
                stream = pool.imap(_process_in_worker, takes, chunksize=1)
                for done, result in enumerate(stream, start=1):
                    skipped += result.skipped is not None
                    bar.update(
                        task,
                        completed=done,
                        skipped=skipped,
                        rate=done / (time.perf_counter() - start),
                    )
                    yield result
        else:
            processor = TakeProcessor(settings)
            for done, take in enumerate(takes, start=1):
                result = processor(take)
                skipped += result.skipped is not None
                bar.update(
                    task, completed=done, skipped=skipped, rate=done / (time.perf_counter() - start)
                )
                yield result
