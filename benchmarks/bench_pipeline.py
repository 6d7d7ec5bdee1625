"""The whole demo pipeline, end to end on SQLite, in bars per second.

Runs ``corec run --config configs/demo.yaml --json`` as a user would (a fresh process
each time: imports, migrations, the replay of all 45,031 bars, trading, the pool, the
alerts, the summary), and variants that switch plugins off to show where the time goes:

- ``full``: the demo as ``make run`` runs it;
- ``no-trading``: the same without trading_execution (market data, monitor, pool, alerts);
- ``replay-only``: exchange_sync alone (read, publish, store the recording).

Prints wall time per process, the node's own ``elapsed_s`` (start to summary),
bars/s, peak RSS of the child, and the comparison with the target (full recording in
under 10 s on a 2-core machine). ``--json`` prints machine-readable results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
TARGET_S = 10.0
VARIANTS = {
    "full": None,
    "no-trading": ["exchange_sync", "market_monitor", "capital_pool", "alert_manager"],
    "replay-only": ["exchange_sync"],
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_config(workdir: Path, plugins: list[str] | None) -> Path:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["node"]["data_dir"] = str(workdir / "var")
    if plugins is not None:
        data["node"]["plugins"] = plugins
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_once(config: Path, workdir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COREC")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "corec", "run", "--config", str(config), "--json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"corec run failed ({done.returncode}):\n{done.stderr}")
    summary = json.loads(done.stdout)
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    bars = summary["market_data"]["bars_processed"]
    if bars != 45031:
        raise SystemExit(f"expected 45,031 bars, the run processed {bars}")
    return {
        "wall_s": wall_s,
        "elapsed_s": summary["elapsed_s"],
        "bars": bars,
        "trades": summary["trading"].get("trades"),
        "peak_rss_mib": max(rss_kib, before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per variant (best is reported)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variants")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    for name in args.variants.split(","):
        runs = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="corec-bench-") as tmp:
                workdir = Path(tmp)
                runs.append(run_once(write_config(workdir, VARIANTS[name]), workdir))
        best = min(runs, key=lambda r: r["wall_s"])
        results[name] = {
            **best,
            "median_wall_s": statistics.median(r["wall_s"] for r in runs),
            "bars_per_s": best["bars"] / best["wall_s"],
            "node_bars_per_s": best["bars"] / best["elapsed_s"],
            "runs": len(runs),
        }
    machine = {
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
    }
    if args.json:
        print(json.dumps({"machine": machine, "target_s": TARGET_S, "results": results}, indent=2))
        return
    print(f"CoreC demo pipeline, 45,031 bars, SQLite, best of {args.repeats}")
    print(f"Python {machine['python']} on {machine['cpu']} ({machine['cores']} cores)")
    header = f"{'variant':<12} {'wall s':>7} {'median':>7} {'node s':>7} {'bars/s':>8} {'trades':>7} {'RSS MiB':>8}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<12} {r['wall_s']:>7.2f} {r['median_wall_s']:>7.2f} {r['elapsed_s']:>7.2f} "
            f"{r['bars_per_s']:>8,.0f} {r['trades'] or '-'!s:>7} {r['peak_rss_mib']:>8.0f}"
        )
    if "full" in results:
        full = results["full"]["wall_s"]
        verdict = "meets" if full < TARGET_S else "MISSES"
        print(
            f"\nfull recording in {full:.2f} s end to end: {verdict} the target of {TARGET_S:.0f} s "
            f"({TARGET_S / full:.2f}x headroom)"
        )


if __name__ == "__main__":
    main()
