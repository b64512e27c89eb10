"""Reading an evolution's run directory (the schema `search.evolution` writes) into rows and DataFrames.

    rows = read_archive("runs/evo1")                    # archive.jsonl records (a torn last line dropped)
    df = archive_frame(rows, run="evo1")                # one row per candidate, ARCHIVE_COLUMNS
    gens = generations_frame(read_jsonl(".../generations.jsonl"))

The frame functions take records (e.g. a `JsonlTail`'s, while the run grows) and accept partial or odd
ones: fields that are absent or of the wrong type become NaN / "" / None rather than errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from posenas_core.runs.io import read_jsonl

if TYPE_CHECKING:  # pandas is imported where it is used
    import pandas as pd

__all__ = ["ARCHIVE_COLUMNS", "GENERATION_COLUMNS", "read_archive", "archive_frame", "generations_frame"]

ARCHIVE_COLUMNS = ["run", "id", "generation", "parent", "genotype", "status", "params", "params_with_bn_stats",
                   "macs", "val_loss", "fitness", "ap", "epochs", "wall_time_s", "mutation", "error", "spec"]
_ARCHIVE_FLOATS = ["generation", "parent", "params", "params_with_bn_stats", "macs", "val_loss", "fitness", "ap",
                   "epochs", "wall_time_s"]
GENERATION_COLUMNS = ["generation", "best_id", "best_fitness", "parents", "population_fitness", "wall_time_s"]


def read_archive(run_dir) -> list[dict]:
    """archive.jsonl of a run directory (a torn last line is dropped; [] when there is none yet)."""
    return read_jsonl(Path(run_dir) / "archive.jsonl")


def _num(v: Any) -> float:
    """A float for JSON numbers; NaN for anything else (None, strings, bools)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    return float(v)


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None


def archive_frame(records: Iterable[Mapping], run: str = "") -> pd.DataFrame:
    """archive.jsonl records -> DataFrame with `ARCHIVE_COLUMNS`, one row per candidate id, by id.

    Records without an integer "id" are skipped; a repeated id keeps its last record (a resumed run
    may evaluate a candidate again). Numeric columns are float (NaN when absent / null; parent NaN for
    the ancestor); id is int; genotype, status, mutation, error are str ("" when absent); spec is the
    spec dict (None when absent); run is `run` on every row.
    """
    import pandas as pd

    rows: dict[int, dict] = {}
    for r in records:
        if not isinstance(r, Mapping):
            continue
        cid = _int_or_none(r.get("id"))
        if cid is None:
            continue
        row: dict[str, Any] = {"run": str(run), "id": cid}
        for c in _ARCHIVE_FLOATS:
            row[c] = _num(r.get(c))
        for c in ("genotype", "status", "mutation", "error"):
            v = r.get(c)
            row[c] = "" if v is None else str(v)
        row["spec"] = r.get("spec") if isinstance(r.get("spec"), Mapping) else None
        rows[cid] = row
    df = pd.DataFrame([rows[k] for k in sorted(rows)], columns=ARCHIVE_COLUMNS)
    df["id"] = df["id"].astype(int)
    for c in _ARCHIVE_FLOATS:
        df[c] = df[c].astype(float)
    return df


def generations_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """generations.jsonl records -> DataFrame with `GENERATION_COLUMNS`, one row per generation, sorted.

    generation is int (records without one are skipped; a repeated generation keeps its last record);
    best_id, best_fitness, wall_time_s float (NaN when absent); parents a list of int ids,
    population_fitness a list of floats (NaN for nulls).
    """
    import pandas as pd

    rows: dict[int, dict] = {}
    for r in records:
        if not isinstance(r, Mapping):
            continue
        g = _int_or_none(r.get("generation"))
        if g is None:
            continue
        parents = r.get("parents")
        pop = r.get("population_fitness")
        rows[g] = {
            "generation": g, "best_id": _num(r.get("best_id")), "best_fitness": _num(r.get("best_fitness")),
            "parents": [p for p in (parents if isinstance(parents, list) else []) if _int_or_none(p) is not None],
            "population_fitness": [_num(v) for v in (pop if isinstance(pop, list) else [])],
            "wall_time_s": _num(r.get("wall_time_s")),
        }
    df = pd.DataFrame([rows[k] for k in sorted(rows)], columns=GENERATION_COLUMNS)
    df["generation"] = df["generation"].astype(int)
    for c in ("best_id", "best_fitness", "wall_time_s"):
        df[c] = df[c].astype(float)
    return df
