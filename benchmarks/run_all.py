"""Run every benchmark in turn (make bench)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for script in ("profile_baselines.py", "synth_rate.py", "train_throughput.py", "ap_figures.py", "learning_curve.py",
               "evopose_transfer_ablation.py", "supernet_speed.py", "supernet_short_training.py",
               "deploy_speed.py", "deploy_accuracy.py"):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE.parent)
