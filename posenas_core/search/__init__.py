"""posenas_core.search: evolution, its archive, Pareto fronts, weight transfer, executors.

Names are imported from their module on first use.
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "evolution": ("EvolutionConfig", "run_evolution", "resume", "fitness"),
    "candidate": ("evaluate_candidate",),
    "archive": ("ARCHIVE_COLUMNS", "GENERATION_COLUMNS", "read_archive", "archive_frame", "generations_frame"),
    "pareto": ("pareto_front", "pareto_order", "dominates"),
    "transfer": ("TRANSFER_ACTIONS", "transfer_weights", "transfer_state", "transfer_report"),
    "executors": ("EXECUTORS", "make_executor", "ray_available"),
})
