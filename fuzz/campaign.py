"""The long fuzz campaign behind tests/test_fuzz.py (not run in CI).

    python fuzz/campaign.py                 # 20,000 examples, split over the five properties
    python fuzz/campaign.py --examples 2000 --seed 7

Runs the same properties as the test suite (`runbook validate` on random YAML, random text, random
bytes and mutations of runbooks/phase-1.5.yaml: exit 0 or 2, no traceback, every problem located as
file:line[:col]) with many more examples and a fresh seed, and prints how the examples ended. A
failure prints hypothesis's shrunk example and exits 1. Expect about 10 ms per small example and
0.2 s per mutated flagship on a 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

import test_fuzz  # noqa: E402

# Share of the examples each property gets (the mutations of the flagship are the slow ones).
PLAN = {
    "random YAML documents": (test_fuzz.values, 0.30, test_fuzz._dump),
    "random YAML text": (test_fuzz.yaml_text, 0.30, lambda text: text),
    "random bytes": (test_fuzz.st.binary(max_size=400), 0.10, lambda raw: raw),
    "structural mutations": (test_fuzz.structural_mutants(), 0.15, lambda text: text),
    "textual mutations": (test_fuzz.textual_mutants(), 0.15, lambda text: text),
}


def _property(strategy, to_content, where: Path, file_name: str, outcomes: Counter[int], rng_seed: int, count: int):  # type: ignore[no-untyped-def]
    @seed(rng_seed)
    @settings(max_examples=max(1, count), deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(value=strategy)
    def prop(value: object) -> None:
        outcomes[test_fuzz.check_validate(where, to_content(value), file_name)] += 1

    return prop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20_000, help="examples in total (default 20000)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="random seed (default: the clock)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="runbook-fuzz-"))
    shutil.copy(test_fuzz.REPO / "runbook.yaml", folder / "runbook.yaml")
    (folder / "runbooks").mkdir()
    loose = Path(tempfile.mkdtemp(prefix="runbook-fuzz-loose-"))
    print(f"fuzz campaign: {args.examples} examples, seed {args.seed}")
    failed = False
    try:
        for name, (strategy, share, to_content) in PLAN.items():
            outcomes: Counter[int] = Counter()
            mutant = "mutations" in name
            where, file_name = (folder / "runbooks", "phase-1.5.yaml") if mutant else (loose, "phase-9.9.yaml")

            prop = _property(strategy, to_content, where, file_name, outcomes, args.seed, int(args.examples * share))
            started = time.monotonic()
            try:
                prop()
            except Exception as exc:  # hypothesis has printed the falsifying example
                print(f"  {name}: FAILED after {sum(outcomes.values())} examples: {type(exc).__name__}: {exc}")
                for note in getattr(exc, "__notes__", []):
                    print(f"    {note}")
                failed = True
                continue
            total = sum(outcomes.values())
            print(
                f"  {name:<24} {total:>6} tried  {outcomes[0]:>6} valid  {outcomes[2]:>6} rejected with located "
                f"problems  ({time.monotonic() - started:.0f} s)"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(loose, ignore_errors=True)
    print("no traceback, every problem located" if not failed else "FAILURES above")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
