"""Reading an evolution's archive.jsonl / generations.jsonl into rows and DataFrames."""

import math

import numpy as np

from posenas_core.runs.io import append_jsonl
from posenas_core.search.archive import (ARCHIVE_COLUMNS, GENERATION_COLUMNS, archive_frame, generations_frame,
                                         read_archive)
from posenas_core.search.evolution import ARCHIVE_FIELDS, GENERATION_FIELDS


def test_frame_columns_cover_the_schema_the_evolution_writes():
    assert set(ARCHIVE_FIELDS) <= set(ARCHIVE_COLUMNS) and set(ARCHIVE_COLUMNS) - set(ARCHIVE_FIELDS) == {"run"}
    assert set(GENERATION_COLUMNS) == set(GENERATION_FIELDS)


def test_read_archive_drops_a_torn_last_line(tmp_path):
    assert read_archive(tmp_path) == []
    append_jsonl(tmp_path / "archive.jsonl", {"id": 0, "fitness": 0.5})
    with open(tmp_path / "archive.jsonl", "a") as f:
        f.write('{"id": 1, "fit')
    assert read_archive(tmp_path) == [{"id": 0, "fitness": 0.5}]


def test_archive_frame_types_and_odd_records():
    records = [
        {"id": 2, "generation": 1, "parent": 0, "genotype": "g2", "status": "failed", "fitness": None, "error": "E"},
        {"id": 0, "generation": 0, "parent": None, "genotype": "g0", "status": "ok", "fitness": 0.5,
         "params": 1000, "spec": {"kind": "evopose2d"}},
        {"id": 1, "generation": 1, "parent": 0, "genotype": "old", "fitness": 0.9},
        {"id": 1, "generation": 1, "parent": 0, "genotype": "g1", "fitness": 0.4, "macs": True},   # repeated: last wins
        {"id": "3"}, {"generation": 2}, [1, 2],                                                    # skipped
    ]
    df = archive_frame(records, run="r")
    assert list(df.columns) == ARCHIVE_COLUMNS and list(df["id"]) == [0, 1, 2] and df["id"].dtype == np.int64
    assert list(df["genotype"]) == ["g0", "g1", "g2"] and list(df["run"]) == ["r"] * 3
    assert df["fitness"].tolist()[:2] == [0.5, 0.4] and math.isnan(df["fitness"][2])
    assert math.isnan(df["parent"][0]) and df["parent"][1] == 0.0 and math.isnan(df["macs"][1])   # a bool is no number
    assert df["spec"][0] == {"kind": "evopose2d"} and df["spec"][1] is None
    assert list(df["status"]) == ["ok", "", "failed"] and list(df["error"]) == ["", "", "E"]
    empty = archive_frame([])
    assert list(empty.columns) == ARCHIVE_COLUMNS and len(empty) == 0


def test_generations_frame_types_and_odd_records():
    records = [
        {"generation": 1, "parents": [3, "x", 0], "best_id": 3, "best_fitness": 0.2, "population_fitness": [0.2, None]},
        {"generation": 0, "parents": [0], "best_id": 0, "best_fitness": 0.5, "population_fitness": [0.5],
         "wall_time_s": 1.5},
        {"generation": "2"},
    ]
    df = generations_frame(records)
    assert list(df.columns) == GENERATION_COLUMNS and list(df["generation"]) == [0, 1]
    assert df["parents"][1] == [3, 0] and df["population_fitness"][1][0] == 0.2
    assert math.isnan(df["population_fitness"][1][1]) and math.isnan(df["wall_time_s"][1])
    assert df["best_fitness"].tolist() == [0.5, 0.2] and df["best_id"].dtype == float
