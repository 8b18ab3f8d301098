"""Fleet benchmark: N members (default 50) behind ONE shared emulator with 100 ms latency, at concurrency 1, 8, 16.

Prints, for each concurrency on the local engine: the fleet's wall time, the sequential sum of its
member runs (each run's own duration from its record), their ratio (how much the fleet overlaps), and
the per-member overhead against a bare `runbook run` of one member: (fleet wall at concurrency 1 / N)
over the bare run's wall time, and the mean time a member spends outside its run (process start,
imports, loading its workspace) as the coordinator saw it. Nothing is asserted; ratios only.

By default the members' runbook drops its `notebook.run` steps, so a member is bound by the
emulator's latency rather than by starting Jupyter kernels on a small machine; `--with-kernel` keeps
them. Members are generated from the committed sample (`git archive HEAD`); one emulator process
(the fleet file's `emulator:`) serves every member's subscription and gateway, as in the tests. The
bare run talks to the same kind of emulator process. It also prints what ARM's token bucket costs
per request (`Throttle.take`), since the shared emulator is the fleet's bottleneck. `--quick` is a
short smoke form (8 members, concurrency 1 and 4, one bare run).

    python bench/bench_fleet.py [--members 50] [--concurrency 1 8 16] [--latency 0.1] [--with-kernel] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
# Member processes (and the local engine's fork server) are new interpreters: they need it too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))

from runbook.fleet.coordinator import FleetOptions, plan_fleet, run_fleet  # noqa: E402
from runbook.fleet.generate import generate_fleet  # noqa: E402
from runbook.fleet.model import load_fleet  # noqa: E402


def _drop_kernel_steps(member: Path) -> None:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    path = member / "runbooks" / "phase-1.5.yaml"
    doc = yaml.load(path.read_text(encoding="utf-8"))
    for stage in ("discovery", "fix", "verify"):
        doc[stage] = [step for step in doc.get(stage) or [] if step.get("uses") != "notebook.run"]
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(doc, handle)


def _fleet(folder: Path, members: int, latency: float, with_kernel: bool) -> Path:
    fleet_file = generate_fleet(folder, members, source=REPO, broken={}, latency=latency, git=False)
    if not with_kernel:
        for member in (folder / "members").iterdir():
            _drop_kernel_steps(member)
    return fleet_file


def bare_run(folder: Path, latency: float, with_kernel: bool, repeat: int = 3) -> float:
    """Median wall time of `runbook run 1.5 --yes` in a fresh member, as a user would type it."""
    from runbook.fleet.emulator import start_fleet_emulator

    times = []
    for i in range(repeat):
        _fleet(folder / f"bare-{i}", 1, latency, with_kernel)
        member = folder / f"bare-{i}" / "members" / "member-01"
        emulator = start_fleet_emulator(folder / f"bare-{i}" / "estate.yaml", latency=latency)
        try:
            env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1", "FLEET_ARM_URL": emulator.arm_url,
                   "FLEET_GATEWAY_URL": emulator.gateway_url_for("apim-member-01"),
                   "APIM_API_KEY": "member01-apim-key-not-a-secret"}
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "runbook.cli", "run", "1.5", "--yes"], cwd=member, env=env,
                           check=True, capture_output=True)
            times.append(time.perf_counter() - began)
        finally:
            emulator.stop()
    return statistics.median(times)


def throttle_cost(requests: int = 200_000) -> float:
    """Microseconds per `Throttle.take` (the token-bucket bookkeeping each ARM request pays)."""
    from runbook.azure.emulator.throttle import Throttle
    from runbook.azure.estate import Estate
    from runbook.fleet.generate import fleet_estate, subscription_id

    subs = [subscription_id(i) for i in range(1, 51)]
    data = fleet_estate([(i, None, sub) for i, sub in enumerate(subs, start=1)])
    for sub in data["subscriptions"]:  # buckets that never empty: the granted path, what nearly every request takes
        sub["rate_limits"] = {"reads": {"burst": 10**9, "per_second": 25}}
    throttle = Throttle(Estate.model_validate(data))
    began = time.perf_counter()
    for n in range(requests):
        throttle.take(subs[n % 50], "bench-token", "GET")
    return (time.perf_counter() - began) / requests * 1e6


def fleet_run(folder: Path, members: int, concurrency: int, latency: float, with_kernel: bool) -> dict[str, float]:
    plan = plan_fleet(load_fleet(_fleet(folder, members, latency, with_kernel)), "1.5",
                      FleetOptions(max_concurrency=concurrency, assume_yes=True))
    began = time.perf_counter()
    outcome = run_fleet(plan)
    wall = time.perf_counter() - began
    finished = [e for e in outcome.events if e["event"] == "member_finished"]
    failed = [e["member"] for e in finished if e["status"] != "success"]
    if failed:
        print(f"  warning: {len(failed)} members did not succeed: {failed[:5]}", file=sys.stderr)
    runs = [float(e["duration_s"] or 0) for e in finished]
    walls = [float(e["wall_s"] or 0) for e in finished]
    served = next((e for e in outcome.events if e["event"] == "emulator_stopped"), {})
    throttled = sum(c["throttled"] for c in served.get("subscriptions", {}).values())
    return {
        "requests": float(served.get("requests", 0)),
        "throttled": float(throttled),
        "wall": wall,
        "sequential_sum": sum(runs),
        "mean_run": statistics.mean(runs),
        "mean_outside_run": statistics.mean(w - r for w, r in zip(walls, runs, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--with-kernel", action="store_true")
    parser.add_argument("--start-method", choices=["forkserver", "spawn"], default="forkserver",
                        help="how the local engine starts member processes")
    parser.add_argument("--quick", action="store_true", help="a short smoke form: 8 members, concurrency 1 and 4")
    args = parser.parse_args()
    if args.quick:
        args.members, args.concurrency = min(args.members, 8), [1, 4]
    from runbook.fleet import engines

    engines.START_METHOD = args.start_method
    print(f"fleet benchmark: {args.members} members, emulator latency {args.latency * 1000:.0f} ms, "
          f"{'with' if args.with_kernel else 'without'} kernel steps, {args.start_method}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        folder = Path(tmp)
        print(f"ARM token bucket: {throttle_cost(20_000 if args.quick else 200_000):.2f} us per request (Throttle.take)")
        repeat = 1 if args.quick else 3
        bare = bare_run(folder, args.latency, args.with_kernel, repeat)
        print(f"bare `runbook run 1.5`: {bare:.2f} s wall (median of {repeat})")
        rows = []
        for concurrency in args.concurrency:
            result = fleet_run(folder / f"c{concurrency}", args.members, concurrency, args.latency, args.with_kernel)
            rows.append((concurrency, result))
            print(f"concurrency {concurrency:>2}: wall {result['wall']:7.1f} s, sequential sum of runs "
                  f"{result['sequential_sum']:7.1f} s, sum/wall {result['sequential_sum'] / result['wall']:5.2f}x, "
                  f"mean run {result['mean_run']:.2f} s, mean outside the run {result['mean_outside_run']:.2f} s, "
                  f"one emulator served {result['requests']:.0f} requests ({result['throttled']:.0f} throttled)")
        first = next((r for c, r in rows if c == 1), None)
        if first is not None:
            per_member = first["wall"] / args.members
            print(f"per-member cost at concurrency 1: {per_member:.2f} s = {per_member / bare:.2f}x a bare `runbook run` "
                  f"({per_member - bare:+.2f} s)")
            for concurrency, result in rows:
                print(f"  speed-up of concurrency {concurrency} over 1: {first['wall'] / result['wall']:.2f}x")


if __name__ == "__main__":
    main()
