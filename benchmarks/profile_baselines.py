"""`posenas profile` of every preset, at its own input size and at 128x96, 1 thread.

    .venv/bin/python benchmarks/profile_baselines.py [--threads 1] [--min-run-time 2]
"""

from __future__ import annotations

import argparse

from _common import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-run-time", type=float, default=2.0)
    a = ap.parse_args()
    from posenas_core.eval import profile_model
    from posenas_core.models import PRESETS, build_model

    rows = {}
    for name, preset in sorted(PRESETS.items()):
        model = build_model(preset.spec)
        for hw in {tuple(preset.input_size_hw), (128, 96)}:
            r = profile_model(model, hw, threads=a.threads, min_run_time=a.min_run_time)
            rows[f"{name}@{hw[0]}x{hw[1]}"] = r
    emit("profile_baselines", {"threads": a.threads, "profiles": rows})


if __name__ == "__main__":
    main()
