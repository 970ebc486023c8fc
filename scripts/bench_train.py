"""Training throughput of ForecastGAN and RefineGAN: samples/s of one training step (critic +
generator), and for the refine stage clips/s and the share of the step spent forecasting.

    python scripts/bench_train.py                                  # paper + small, fp32 + bf16, CPU
    python scripts/bench_train.py --presets paper --steps 3 --accelerator gpu --peak-tflops 989
    python scripts/bench_train.py --stages refine --presets small --clip-length 8
    python scripts/bench_train.py --stages forecast run --presets small --precisions 32-true
    python scripts/bench_train.py --stages contention --presets small --steps 3 --contention-reps 2

The `run` stage trains the real default command (`python -m frgan.train`, synthetic data,
callbacks, validation, checkpoints, logging) for --run-batches batches and reads the run's
timing.json (frgan/callbacks/timing.py): batches/s including everything, beside the pure
step above, so the gap between the two stays visible. Extra overrides: --run-overrides.

The `contention` stage measures the small forecast step (the first of --presets) under each
OpenMP thread policy (frgan/utils/threads.py: `torch`, the runtime's spinning default, and
`passive`), each in a fresh process started with that policy's environment: alone and beside one
CPU-bound competitor (a busy Python loop the benchmark starts itself), in alternating phases of
--steps steps, --contention-reps times with the policies interleaved. It reports each policy's
rate beside the competitor as a share of its rate alone (a fair share on 2 cores is about half),
and the passive policy's alone rate against torch's (it must not slow the run alone).

Runs the real `ForecastGAN.training_step` through a Lightning Trainer on random batches,
times each step after `--warmup` untimed ones (the fastest is reported: the least disturbed
on a shared machine), and counts the model FLOPs of the first
(warm-up) step with torch.utils.flop_counter.FlopCounterMode. With --peak-tflops it
prints the model FLOPs utilisation (MFU). Prints a table and writes JSON (--out).
The release measured 0.54 samples/s (paper preset, batch 16, fp32) on the project's
2-core CPU machines; the table shows our ratio to it. Shared machines are noisy: the
JSON records the load average and the process CPU time per step beside wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# first: frgan applies the OpenMP thread policy of the entry points before torch loads
import frgan  # noqa: F401

# isort: split
import pytorch_lightning as pl
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

import frgan.models.blocks as blocks
from frgan.models import ForecastGAN, Generator, RefineGAN
from frgan.utils import results_page
from frgan.utils.files import write_json_atomic
from frgan.utils.threads import (
    OPENMP_WAIT_VARIABLES,
    POLICIES,
    POLICY_VARIABLE,
    thread_policy_variables,
)

CONTENTION_POLICIES = ("torch", "passive")
# one CPU-bound job: a single busy thread
COMPETITOR = [sys.executable, "-c", "while True: pass"]

REFERENCE = {
    "preset": "paper",
    "batch_size": 16,
    "precision": "32-true",
    "samples_per_s": 0.54,
    "source": "original release, 2 CPU cores, torch 2.13 (frgan-reference.md section 8)",
}


class RandomPairs(Dataset):
    """Forecast batches of random values in [-1, 1]: the timing does not depend on content."""

    def __init__(self, length: int, image_size: int):
        self.length, self.image_size = length, image_size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        shape = (3, self.image_size, self.image_size)
        return {
            key: torch.rand(shape, generator=generator) * 2 - 1 for key in ("x0", "s0", "xt", "st")
        }


class RandomClips(Dataset):
    """Refine batches of random values in [-1, 1]: x0, s0 and clips of `frames` frames."""

    def __init__(self, length: int, image_size: int, frames: int):
        self.length, self.image_size, self.frames = length, image_size, frames

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        image = (3, self.image_size, self.image_size)
        clip = (self.frames, *image)
        sample = {key: torch.rand(image, generator=generator) * 2 - 1 for key in ("x0", "s0")}
        for key in ("frames", "structures"):
            sample[key] = torch.rand(clip, generator=generator) * 2 - 1
        return sample


class _NoModuleTracking:
    """Stands in for FlopCounterMode's ModuleTracker: its backward hooks break
    torch.autograd.grad on leaf inputs, which the gradient penalty uses."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


def total_flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that only keeps the total (no per-module breakdown)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()
    return counter


class StepTimer(pl.Callback):
    """Wall and process CPU time of every training batch; FLOPs of the first one."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.flops = 0
        self.device = "cpu"
        self._counter: FlopCounterMode | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self._counter = total_flop_counter()
            self._counter.__enter__()
        self.device = str(pl_module.device)  # fit moves the model back to the CPU when it ends
        _synchronize(pl_module.device)
        self._start = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        _synchronize(pl_module.device)
        self.wall.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops = self._counter.get_total_flops()
            self._counter = None


class ForecastTimer:
    """Wraps RefineGAN.forecast: wall time of the frozen forecaster per training batch."""

    def __init__(self, model: RefineGAN):
        self.seconds: list[float] = []
        self._forecast = model.forecast
        model.forecast = self

    def __call__(self, *args):
        start = time.perf_counter()
        forecast = self._forecast(*args)
        _synchronize(forecast.device)
        self.seconds.append(time.perf_counter() - start)
        return forecast


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def separate_heads(generator: Generator, features: torch.Tensor):
    """Generator.head as one convolution per head (what it computes stacked in one)."""
    flow = None if generator.to_flow is None else generator.to_flow(features)
    return generator.to_mask(features), generator.to_residual(features), flow


def generator_forward_flops(preset: str, image_size: int, batch_size: int) -> int:
    """FLOPs of one generator forward per sample, counted on the meta device (no compute)."""
    with torch.device("meta"):
        generator = Generator.from_preset(preset, image_size)
        inputs = [torch.empty(batch_size, 3, image_size, image_size) for _ in range(3)]
        with FlopCounterMode(display=False) as counter:
            generator(*inputs)
    return counter.get_total_flops() // batch_size


def _fit_timed(
    model: pl.LightningModule,
    data: DataLoader,
    precision: str,
    args,
    accelerator: str | None = None,
    callbacks: tuple[pl.Callback, ...] = (),
) -> StepTimer:
    """Fit `model` on `data` with a quiet trainer (and `callbacks` before the timer); the timer
    of its steps."""
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator=accelerator or args.accelerator,
        devices=1,
        precision=precision,
        max_epochs=1,
        limit_train_batches=len(data),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[*callbacks, timer],
    )
    trainer.fit(model, data)
    return timer


def bench_one(preset: str, precision: str, batch_size: int, args: argparse.Namespace) -> dict:
    pl.seed_everything(0, verbose=False)
    model = ForecastGAN(preset=preset, image_size=args.image_size)
    batches = args.warmup + args.steps
    data = DataLoader(RandomPairs(batches * batch_size, args.image_size), batch_size=batch_size)
    timer = _fit_timed(model, data, precision, args)
    timed = timer.wall[args.warmup :]
    step_s = min(timed)  # the least disturbed step: others share this machine
    flops_per_sample = timer.flops / batch_size
    result = {
        "preset": preset,
        "precision": precision,
        "batch_size": batch_size,
        "image_size": args.image_size,
        "device": timer.device,
        "steps": args.steps,
        "step_s": timed,
        "cpu_s": timer.cpu[args.warmup :],
        "samples_per_s": batch_size / step_s,
        "train_flops_per_sample": flops_per_sample,
        "generator_forward_flops_per_sample": generator_forward_flops(
            preset, args.image_size, batch_size
        ),
    }
    if args.peak_tflops:
        result["mfu"] = result["samples_per_s"] * flops_per_sample / (args.peak_tflops * 1e12)
    return result


def bench_refine(preset: str, precision: str, args: argparse.Namespace, folder: Path) -> dict:
    """One RefineGAN configuration: the refine preset `preset` on the forecaster of the
    stage-1 preset of the same name (an untrained one: timing does not depend on weights)."""
    pl.seed_everything(0, verbose=False)
    forecast_file = folder / f"forecast_{preset}.ckpt"
    forecast = ForecastGAN(preset=preset, image_size=args.image_size)
    torch.save(
        {"frgan_model": forecast.identity(), "state_dict": forecast.state_dict()}, forecast_file
    )
    model = RefineGAN(forecast_ckpt=str(forecast_file), preset=preset, image_size=args.image_size)
    forecast_timer = ForecastTimer(model)
    batches, clips = args.warmup + args.steps, args.clip_batch
    data = DataLoader(
        RandomClips(batches * clips, args.image_size, args.clip_length), batch_size=clips
    )
    timer = _fit_timed(model, data, precision, args)
    timed = timer.wall[args.warmup :]
    fastest = min(range(len(timed)), key=timed.__getitem__)
    step_s = timed[fastest]
    forecast_s = forecast_timer.seconds[args.warmup :][fastest]
    return {
        "stage": "refine",
        "preset": preset,
        "precision": precision,
        "clips_per_batch": clips,
        "clip_length": args.clip_length,
        "image_size": args.image_size,
        "device": timer.device,
        "steps": args.steps,
        "step_s": timed,
        "cpu_s": timer.cpu[args.warmup :],
        "forecast_s": forecast_timer.seconds[args.warmup :],
        "clips_per_s": clips / step_s,
        "forecast_share": forecast_s / step_s,
        # with forecasts cached the step skips exactly the forecaster's forward
        "clips_per_s_cached": clips / (step_s - forecast_s),
        "train_flops_per_clip": timer.flops / clips,
    }


def bench_run(args: argparse.Namespace, folder: Path) -> dict:
    """The real default training command for --run-batches batches and one validation."""
    command = [
        sys.executable,
        "-m",
        "frgan.train",
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={args.run_batches}",
        "test=false",
        "logger=csv",
        f"hydra.run.dir={folder}",
        *args.run_overrides,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the real run failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
    timing = json.loads((folder / "timing.json").read_text())
    return {
        "stage": "run",
        "command": command[1:],
        "process_s": time.perf_counter() - start,
        **timing,
    }


class Competitor(pl.Callback):
    """Runs the busy competitor during the phases `beside` marks (phase i: the --steps steps
    after the warm-up that start at step warmup + i * steps), started before and stopped after
    the phase's steps, outside their timing (put it before the StepTimer)."""

    def __init__(self, warmup: int, steps: int, beside: list[bool]):
        self.warmup, self.steps, self.beside = warmup, steps, beside
        self.process: subprocess.Popen | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        timed = batch_idx - self.warmup
        if timed < 0 or timed % self.steps:
            return
        self.stop()
        if self.beside[timed // self.steps]:
            self.process = subprocess.Popen(COMPETITOR)
            time.sleep(0.5)  # spinning before the phase's first step starts

    def on_train_end(self, trainer, pl_module):
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def bench_contention_child(args: argparse.Namespace) -> dict:
    """In a process started with one thread policy: the small forecast step in phases alone
    and beside the competitor (--contention-phases, alternating)."""
    pl.seed_everything(0, verbose=False)
    beside = [phase % 2 == int(args.competitor_first) for phase in range(args.contention_phases)]
    model = ForecastGAN(preset=args.presets[0], image_size=args.image_size)
    batches = args.warmup + args.steps * len(beside)
    data = DataLoader(
        RandomPairs(batches * args.batch_size, args.image_size), batch_size=args.batch_size
    )
    competitor = Competitor(args.warmup, args.steps, beside)
    try:
        timer = _fit_timed(model, data, "32-true", args, "cpu", (competitor,))
    finally:
        competitor.stop()
    timed = timer.wall[args.warmup :]
    phases = [timed[i * args.steps : (i + 1) * args.steps] for i in range(len(beside))]
    return {
        "threads": torch.get_num_threads(),
        "alone_s": [t for phase, b in zip(phases, beside, strict=True) if not b for t in phase],
        "beside_s": [t for phase, b in zip(phases, beside, strict=True) if b for t in phase],
    }


def policy_environment(policy: str) -> dict[str, str]:
    """This process's environment with only `policy`'s OpenMP waiting variables."""
    env = {
        k: v for k, v in os.environ.items() if k not in (*OPENMP_WAIT_VARIABLES, POLICY_VARIABLE)
    }
    chosen = {POLICY_VARIABLE: policy}
    return {**env, **chosen, **thread_policy_variables(chosen)}


def bench_contention(args: argparse.Namespace, folder: Path) -> dict:
    """Every policy in a fresh process per repetition, interleaved; rates and ratios."""
    steps = {policy: {"alone_s": [], "beside_s": []} for policy in CONTENTION_POLICIES}
    threads, loads = {}, []
    for rep in range(args.contention_reps):
        order = CONTENTION_POLICIES if rep % 2 == 0 else CONTENTION_POLICIES[::-1]
        for policy in order:
            out = folder / f"{policy}_{rep}.json"
            command = [
                sys.executable,
                __file__,
                "--stages",
                "contention-child",
                "--presets",
                args.presets[0],
                "--batch-size",
                str(args.batch_size),
                "--image-size",
                str(args.image_size),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--contention-phases",
                str(args.contention_phases),
                "--out",
                str(out),
                *(["--competitor-first"] if rep % 2 else []),
            ]
            done = subprocess.run(
                command, env=policy_environment(policy), capture_output=True, text=True
            )
            if done.returncode != 0:
                raise SystemExit(f"the {policy} run failed:\n{done.stderr[-2000:]}")
            child = json.loads(out.read_text())["contention_child"]
            threads[policy] = child["threads"]
            for key in ("alone_s", "beside_s"):
                steps[policy][key] += child[key]
            loads.append(os.getloadavg()[0])
    result = {
        "preset": args.presets[0],
        "batch_size": args.batch_size,
        "competitor": " ".join(COMPETITOR[1:]),
        "reps": args.contention_reps,
        "load_average_after_each_run": loads,
        "policies": {},
    }
    for policy in CONTENTION_POLICIES:
        alone, beside = steps[policy]["alone_s"], steps[policy]["beside_s"]
        alone_rate = args.batch_size * len(alone) / sum(alone)
        beside_rate = args.batch_size * len(beside) / sum(beside)
        result["policies"][policy] = {
            "environment": POLICIES[policy],
            "threads": threads[policy],
            **steps[policy],
            "alone_samples_per_s": alone_rate,
            "beside_samples_per_s": beside_rate,
            "kept_share": beside_rate / alone_rate,
        }
    policies = result["policies"]
    result["passive_alone_vs_torch_alone"] = (
        policies["passive"]["alone_samples_per_s"] / policies["torch"]["alone_samples_per_s"]
    )
    result["passive_beside_vs_torch_beside"] = (
        policies["passive"]["beside_samples_per_s"] / policies["torch"]["beside_samples_per_s"]
    )
    return result


def show(console: Console, table: results_page.Table) -> None:
    """Print a results table (the rows a docs page gets) as a rich table, its notes below."""
    shown = Table(title=table.caption)
    for column in table.headers:
        shown.add_column(column, justify="right")
    for row in table.rows:
        shown.add_row(*row)
    console.print(shown)
    for note in table.notes:
        console.print(note)


def forecast_table(results: list[dict], args) -> results_page.Table:
    headers = ("preset", "precision", "batch", "step s", "CPU s", "samples/s", "vs release")
    headers += ("train GFLOP/sample", "G fwd GFLOP/sample", "MFU")
    rows = []
    for r in results:
        comparable = (r["preset"], r["batch_size"]) == (
            REFERENCE["preset"],
            REFERENCE["batch_size"],
        )
        rows.append(
            [
                r["preset"],
                r["precision"],
                str(r["batch_size"]),
                f"{min(r['step_s']):.2f}",
                f"{min(r['cpu_s']):.2f}",
                f"{r['samples_per_s']:.2f}",
                f"{r['samples_per_s'] / REFERENCE['samples_per_s']:.2f}x" if comparable else "-",
                f"{r['train_flops_per_sample'] / 1e9:.1f}",
                f"{r['generator_forward_flops_per_sample'] / 1e9:.1f}",
                f"{r['mfu']:.1%}" if "mfu" in r else "-",
            ]
        )
    caption = (
        f"ForecastGAN training step, {args.image_size} px (critic + generator), the fastest of "
        f"{args.steps} timed steps; vs release: against the release's "
        f"{REFERENCE['samples_per_s']} samples/s ({REFERENCE['preset']} preset, batch "
        f"{REFERENCE['batch_size']}, fp32, 2-core CPU)"
    )
    return results_page.Table(headers, rows, caption)


def contention_table(result: dict) -> results_page.Table:
    rows = [
        [
            policy,
            str(r["threads"]),
            f"{r['alone_samples_per_s']:.2f}",
            f"{r['beside_samples_per_s']:.2f}",
            f"{r['kept_share']:.0%}",
        ]
        for policy, r in result["policies"].items()
    ]
    return results_page.Table(
        ("policy", "threads", "alone samples/s", "beside samples/s", "kept share"),
        rows,
        f"Beside one CPU-bound job ({result['competitor']}): the {result['preset']} "
        f"forecast step, batch {result['batch_size']}, {result['reps']} interleaved reps",
        (
            f"passive vs torch: alone {result['passive_alone_vs_torch_alone']:.2f}x, beside the "
            f"competitor {result['passive_beside_vs_torch_beside']:.2f}x; load average after "
            f"each run {', '.join(f'{x:.1f}' for x in result['load_average_after_each_run'])}",
        ),
    )


def run_table(run: dict, steps: list[dict]) -> results_page.Table:
    share = run["share"]
    row = [str(run["batches"]), f"{run['fit_s']:.0f}", f"{run['batches_per_s']:.3f}"]
    row += [f"{share[name]:.0%}" for name in ("steps", "data", "validation", "other")]
    notes = [f"inside the run, the training step alone: {run['step_batches_per_s']:.3f} batches/s"]
    for r in steps:
        if (r["preset"], r["precision"]) == ("small", "32-true"):
            pure = 1 / (sum(r["step_s"]) / len(r["step_s"]))  # the mean, as the run sees it
            notes.append(
                f"pure step ({r['preset']}, batch {r['batch_size']}, mean of {r['steps']}): "
                f"{pure:.3f} batches/s; the real run reaches {run['batches_per_s'] / pure:.0%} of it"
            )
    return results_page.Table(
        ("batches", "fit s", "batches/s", "steps", "data", "validation", "other"),
        [row],
        f"The real run ({' '.join(run['command'][2:])})",
        notes,
    )


def refine_table(results: list[dict], args) -> results_page.Table:
    headers = ("preset", "precision", "clips", "step s", "CPU s", "clips/s", "forecast share")
    headers += ("clips/s cached", "train GFLOP/clip")
    rows = [
        [
            r["preset"],
            r["precision"],
            str(r["clips_per_batch"]),
            f"{min(r['step_s']):.2f}",
            f"{min(r['cpu_s']):.2f}",
            f"{r['clips_per_s']:.2f}",
            f"{r['forecast_share']:.0%}",
            f"{r['clips_per_s_cached']:.2f}",
            f"{r['train_flops_per_clip'] / 1e9:.1f}",
        ]
        for r in results
    ]
    caption = (
        f"RefineGAN training step, {args.clip_length} frames at {args.image_size} px "
        "(forecaster + critic + generator)"
    )
    return results_page.Table(headers, rows, caption)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stages", nargs="+", default=["forecast", "refine"])
    parser.add_argument("--presets", nargs="+", default=["paper", "small"])
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clip-batch", type=int, default=4, help="refine: clips per batch")
    parser.add_argument("--clip-length", type=int, default=16, help="refine: frames per clip")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per configuration")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed steps first (FLOPs are counted here)"
    )
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's peak TFLOP/s at the benchmarked precision, to print MFU",
    )
    parser.add_argument(
        "--unfolded",
        action="store_true",
        help="ablation: run every conv literally as the paper writes it (no kernel folding)",
    )
    parser.add_argument(
        "--separate-heads",
        action="store_true",
        help="ablation: the generator's mask, residual and flow heads as separate convolutions",
    )
    parser.add_argument("--run-batches", type=int, default=100, help="run: training batches")
    parser.add_argument(
        "--run-overrides", nargs="*", default=[], help="run: extra overrides of frgan.train"
    )
    parser.add_argument(
        "--contention-reps", type=int, default=2, help="contention: runs of each policy"
    )
    parser.add_argument(
        "--contention-phases",
        type=int,
        default=4,
        help="contention: alternating phases (alone, beside the competitor) per run",
    )
    parser.add_argument("--competitor-first", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/train.json"))
    results_page.add_docs_option(parser)
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1 or args.batch_size < 1:
        parser.error(
            "--steps, --warmup and --batch-size must be >= 1 (the warm-up step counts FLOPs)"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.unfolded:
        blocks.FOLD_MIN_PIXELS = float("inf")
    if args.separate_heads:
        Generator.head = separate_heads
    os.environ.setdefault("WANDB_MODE", "disabled")
    if "contention-child" in args.stages:
        write_json_atomic(args.out, {"contention_child": bench_contention_child(args)})
        return

    console = Console()
    load_before = os.getloadavg()
    results, refine_results = [], []
    for preset in args.presets:
        for precision in args.precisions:
            if "forecast" in args.stages:
                console.print(f"[bold]{preset}[/] {precision} batch {args.batch_size} ...")
                results.append(bench_one(preset, precision, args.batch_size, args))
            if "refine" in args.stages:
                console.print(f"[bold]refine {preset}[/] {precision} {args.clip_batch} clips ...")
                with tempfile.TemporaryDirectory() as folder:
                    refine_results.append(bench_refine(preset, precision, args, Path(folder)))

    tables = []
    if results:
        tables.append(forecast_table(results, args))
        show(console, tables[-1])
    run_result = None
    if "run" in args.stages:
        console.print(f"[bold]real run[/] {args.run_batches} batches ...")
        with tempfile.TemporaryDirectory() as folder:
            run_result = bench_run(args, Path(folder))
        tables.append(run_table(run_result, results))
        show(console, tables[-1])
    if refine_results:
        tables.append(refine_table(refine_results, args))
        show(console, tables[-1])
    contention = None
    if "contention" in args.stages:
        console.print(f"[bold]contention[/] {args.contention_reps} reps of each policy ...")
        with tempfile.TemporaryDirectory() as folder:
            contention = bench_contention(args, Path(folder))
        tables.append(contention_table(contention))
        show(console, tables[-1])
    load_after = os.getloadavg()
    load_line = (
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"on {os.cpu_count()} CPUs (a load above the CPU count means shared, noisy timings)"
    )
    console.print(load_line)

    report = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "unfolded": args.unfolded,
        "separate_heads": args.separate_heads,
        "reference": REFERENCE,
        "results": results,
        "refine_results": refine_results,
        "run": run_result,
        "contention": contention,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    console.print(f"wrote {args.out}")
    if args.docs:
        page = results_page.write_results_page(
            args.docs,
            docs_page_name(args),
            "Training throughput: " + ", ".join(args.stages),
            tables,
            report,
            notes=[load_line[0].upper() + load_line[1:] + "."],
        )
        console.print(f"wrote {page}")


def docs_page_name(args) -> str:
    """train_<stages>, with _gpu when the steps ran on a GPU: runs of other stages or devices
    keep their own pages."""
    on_gpu = args.accelerator in ("gpu", "cuda") or (
        args.accelerator == "auto" and torch.cuda.is_available()
    )
    return "train_" + "_".join(args.stages) + ("_gpu" if on_gpu else "")


if __name__ == "__main__":
    main()
