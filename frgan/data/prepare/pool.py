"""Run the takes in this process or in a pool of worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from frgan.data.layout import Take
from frgan.data.prepare.settings import PrepareSettings
from frgan.data.prepare.takes import TakeProcessor, TakeResult
from frgan.data.prepare.videos import VideoProcessor
from frgan.data.video_layout import VideoSource
from frgan.utils.stops import exit_quietly_on_stop

_WORKER_PROCESSOR: TakeProcessor | None = None  # one per pool process (holds the landmark model)


def make_processor(settings: PrepareSettings) -> TakeProcessor:
    """The processor of a MUG-layout take, or of a video source (data=videos)."""
    return TakeProcessor(settings) if settings.videos is None else VideoProcessor(settings)


def _init_worker(settings: PrepareSettings) -> None:
    global _WORKER_PROCESSOR
    exit_quietly_on_stop()
    _WORKER_PROCESSOR = make_processor(settings)


def _process_in_worker(unit: Take | VideoSource) -> list[TakeResult]:
    return _WORKER_PROCESSOR.process(unit)


def run_takes(
    units: list[Take | VideoSource],
    settings: PrepareSettings,
    workers: int,
    progress: bool,
    console: Console,
):
    """Yield each unit's list of TakeResults in the order of `units` (takes, or video sources
    for data=videos), processing them in `workers` processes."""
    name = "takes" if settings.videos is None else "videos"
    columns = (
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("skipped {task.fields[skipped]}"),
        TextColumn("{task.fields[rate]:.1f} frames/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("prepare", total=len(units), skipped=0, rate=0.0)
        start, skipped, frames = time.perf_counter(), 0, 0

        def advance(done: int, results: list[TakeResult]) -> list[TakeResult]:
            nonlocal skipped, frames
            skipped += sum(r.skipped is not None for r in results)
            frames += sum(r.frames + (r.rejected_frames or 0) for r in results)
            rate = frames / (time.perf_counter() - start)
            bar.update(task, completed=done, skipped=skipped, rate=rate)
            return results

        if workers and workers > 0 and units:
            # spawn: landmark backends (torch, mediapipe) are not fork-safe once initialised
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
                stream = pool.imap(_process_in_worker, units, chunksize=1)
                for done, results in enumerate(stream, start=1):
                    yield advance(done, results)
        else:
            processor = make_processor(settings)
            for done, unit in enumerate(units, start=1):
                yield advance(done, processor.process(unit))
