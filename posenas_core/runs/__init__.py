"""posenas_core.runs: atomic I/O and JSON lines, notebook runs (papermill), static HTML export, batches.

Names are imported from their module on first use. The HTML export's parts (`plotly_html`,
`static_widgets`, `widget_state`, `math_html`, `index_page`) and `kernels` are internal to it.
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "io": ("atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "read_torch_file",
           "append_jsonl", "parse_jsonl", "read_jsonl", "JsonlTail"),
    "params": ("Param", "read_parameters", "check_parameters", "coerce_cli_value"),
    "notebooks": ("RunRecord", "NotebookRunError", "run_notebook"),
    "export": ("export_html",),
    "batch": ("Sweep", "SweepRun", "BatchResult", "load_sweep", "run_batch", "collect_runs", "flatten_scalars",
              "write_index"),
})
