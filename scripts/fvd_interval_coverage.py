"""Coverage of FVD's 95% interval on Gaussian features, where the Fréchet distance is known.

    python scripts/fvd_interval_coverage.py [--reps 200] [--draws 1000] [--dims 8 64 400]
        [--clips 32 128] [--bootstrap 50] [--out outputs/bench/fvd_interval_coverage.json]

For each feature dimension d, number of clips n (both sets) and pair of Gaussians (the same
distribution; means apart; means and covariances apart), `reps` pairs of sets are drawn and
the jackknife interval of frgan.metrics.fvd computed for each. Its target, the expected
distance at n clips E[FD_n], is the mean of FD_n over `draws` further pairs; the population
distance is the closed form. Printed and written: the coverage of both, the mean width, the
spread of FD_n it should match, and for comparison the percentile bootstrap with replacement
that FVD reported before (`bootstrap` resamples; 0 leaves it out): its coverage and how often
its interval misses the very estimate it stands beside.
"""

import argparse
import time
from pathlib import Path

import torch

from frgan.metrics.fvd import frechet_distance, frechet_distance_gaussians, jackknife_interval
from frgan.utils.files import write_json_atomic
from frgan.utils.results_page import Table, add_docs_option, write_results_page

CASES = {  # mean offset scale, whether the covariances differ
    "same distribution": (0.0, False),
    "means apart": (0.5, False),
    "means and covariances apart": (0.3, True),
}


def gaussians(d: int, offset: float, other_covariance: bool):
    generator = torch.Generator().manual_seed(d)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    mean_a, mixing_a = draw(d), draw(d, d) / d**0.5
    mean_b = mean_a + offset * draw(d)
    mixing_b = draw(d, d) / d**0.5 if other_covariance else mixing_a
    population = frechet_distance_gaussians(
        mean_a, mixing_a.T @ mixing_a, mean_b, mixing_b.T @ mixing_b
    )
    return (mean_a, mixing_a), (mean_b, mixing_b), float(population)


def bootstrap_percentile(a, b, resamples: int, generator) -> tuple[float, float]:
    """The interval FVD reported before: both sets resampled with replacement, 2.5/97.5%."""
    values = torch.stack(
        [
            frechet_distance(
                a[torch.randint(len(a), (len(a),), generator=generator)],
                b[torch.randint(len(b), (len(b),), generator=generator)],
            )
            for _ in range(resamples)
        ]
    )
    low, high = torch.quantile(values, torch.tensor([0.025, 0.975], dtype=values.dtype))
    return float(low), float(high)


def measure(d: int, n: int, case: str, reps: int, draws: int, resamples: int) -> dict:
    (mean_a, mixing_a), (mean_b, mixing_b), population = gaussians(d, *CASES[case])
    generator = torch.Generator().manual_seed(1)

    def draw_sets():
        noise = torch.randn(2, n, d, generator=generator, dtype=torch.float64)
        return noise[0] @ mixing_a + mean_a, noise[1] @ mixing_b + mean_b

    values = torch.stack([frechet_distance(*draw_sets()) for _ in range(draws)])
    expected = float(values.mean())
    covered = covered_population = 0
    widths = []
    boot_covered = boot_misses_estimate = 0
    for _ in range(reps):
        a, b = draw_sets()
        low, high, _ = jackknife_interval(a, b)
        covered += low <= expected <= high
        covered_population += low <= population <= high
        widths.append(high - low)
        if resamples:
            estimate = float(frechet_distance(a, b))
            boot_low, boot_high = bootstrap_percentile(a, b, resamples, generator)
            boot_covered += boot_low <= expected <= boot_high
            boot_misses_estimate += not boot_low <= estimate <= boot_high
    result = {
        "dims": d,
        "clips": n,
        "case": case,
        "population_distance": round(population, 4),
        "expected_fd_at_n": round(expected, 4),
        "sd_fd_at_n": round(float(values.std()), 4),
        "jackknife_coverage_of_expected": covered / reps,
        "jackknife_coverage_of_population": covered_population / reps,
        "jackknife_mean_width": round(sum(widths) / reps, 4),
        "ideal_width": round(2 * 1.96 * float(values.std()), 4),
    }
    if resamples:
        result["bootstrap_coverage_of_expected"] = boot_covered / reps
        result["bootstrap_misses_its_estimate"] = boot_misses_estimate / reps
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 64, 400])
    parser.add_argument("--clips", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--bootstrap", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)  # small matrices: one is fastest
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/bench/fvd_interval_coverage.json")
    )
    add_docs_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    rows = []
    print(
        "dims clips case                         FD      E[FD_n]  jack->E  jack->FD  "
        "width/ideal  boot->E  boot misses FVD"
    )
    for d in args.dims:
        for n in args.clips:
            for case in CASES:
                row = measure(d, n, case, args.reps, args.draws, args.bootstrap)
                rows.append(row)
                boot = (
                    f"  {row['bootstrap_coverage_of_expected']:.3f}    "
                    f"{row['bootstrap_misses_its_estimate']:.3f}"
                    if args.bootstrap
                    else ""
                )
                print(
                    f"{d:4d} {n:5d} {case:28s} {row['population_distance']:8.2f} "
                    f"{row['expected_fd_at_n']:8.2f}  {row['jackknife_coverage_of_expected']:.3f}"
                    f"    {row['jackknife_coverage_of_population']:.3f}     "
                    f"{row['jackknife_mean_width'] / row['ideal_width']:.2f}{boot}",
                    flush=True,
                )
    result = {
        "level": 0.95,
        "reps": args.reps,
        "draws_for_expected": args.draws,
        "bootstrap_resamples": args.bootstrap,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    if args.docs:
        page = write_results_page(
            args.docs,
            "fvd_interval_coverage",
            "FVD's 95% interval: coverage on Gaussian features",
            [page_table(result)],
            result,
        )
        print(f"wrote {page}")


def page_table(result: dict) -> Table:
    headers = ["dims", "clips", "case", "FD", "E[FD_n]", "jackknife covers E[FD_n]"]
    headers += ["jackknife covers FD", "width / ideal"]
    with_bootstrap = result["bootstrap_resamples"] > 0
    if with_bootstrap:
        headers += ["bootstrap covers E[FD_n]", "bootstrap misses its FVD"]
    rows = []
    for row in result["rows"]:
        cells = [row["dims"], row["clips"], row["case"], f"{row['population_distance']:.2f}"]
        cells += [f"{row['expected_fd_at_n']:.2f}", f"{row['jackknife_coverage_of_expected']:.3f}"]
        cells += [f"{row['jackknife_coverage_of_population']:.3f}"]
        cells += [f"{row['jackknife_mean_width'] / row['ideal_width']:.2f}"]
        if with_bootstrap:
            cells += [f"{row['bootstrap_coverage_of_expected']:.3f}"]
            cells += [f"{row['bootstrap_misses_its_estimate']:.3f}"]
        rows.append(cells)
    caption = (
        f"{result['reps']} pairs of sets per row; E[FD_n], the expected distance at n clips, from "
        f"{result['draws_for_expected']} more; FD is the population distance (closed form). "
        "Coverage: the share of pairs whose interval contains it; width / ideal: the interval's "
        "mean width over 2 x 1.96 x the spread of FD_n."
    )
    if with_bootstrap:
        caption += (
            f" Bootstrap: the percentile bootstrap with replacement ({result['bootstrap_resamples']}"
            " resamples) FVD reported before."
        )
    return Table(headers, rows, caption)


if __name__ == "__main__":
    main()
