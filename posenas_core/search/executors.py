"""Executors that evaluate the candidates of one generation: in this process, or in parallel through Ray.

    ex = make_executor("sequential")                       # or "ray", address=..., num_cpus=...
    for row in ex.map(fn, [args0, args1, ...]):            # results in TASK ORDER, whatever finishes first
        ...
    ex.close()

`fn` must be a module-level function (Ray ships it to its workers by reference) taking the positional
arguments of one task and returning a JSON-able result. Both executors yield the results in the order of
the tasks, so the evolution appends its archive rows in candidate-id order with either of them.

Ray: `ray.init(address=...)` joins an existing cluster (then the run directory must be on a filesystem
every node sees); without an address a local cluster is started with `num_cpus` CPUs (default: all),
no dashboard and an object store capped at `object_store_mb` (the tasks exchange only small dicts; the
weights go through the run directory). Each task reserves `cpus_per_task` CPUs; the task itself sets its
torch thread count (the evolution config's `torch_threads`), so its arithmetic, hence its result, is the
same as in the sequential executor. A cluster this module started is shut down by `close()`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

from posenas_core.errors import ConfigError

__all__ = ["EXECUTORS", "SequentialExecutor", "RayExecutor", "make_executor", "ray_available"]

EXECUTORS = ("sequential", "ray")


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except Exception:  # ImportError, or a broken install
        return False
    return True


class SequentialExecutor:
    """Runs every task in this process, one after the other (lazily: a task starts when its result is asked)."""

    name = "sequential"

    def map(self, fn: Callable[..., Any], tasks: Iterable[Sequence[Any]]) -> Iterator[Any]:
        for args in tasks:
            yield fn(*args)

    def close(self) -> None:
        pass


class RayExecutor:
    """Runs the tasks as Ray tasks (all submitted at once) and yields their results in task order."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, object_store_mb: int = 256,
                 cpus_per_task: float = 1.0):
        if not ray_available():
            raise ConfigError("executor 'ray' needs the ray package, which is not importable in this environment; "
                              "install ray or use executor='sequential'")
        import ray

        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
            raise ConfigError(f"ray num_cpus = {num_cpus!r} is invalid; allowed: null or an integer >= 1")
        if isinstance(object_store_mb, bool) or not isinstance(object_store_mb, int) or object_store_mb < 80:
            raise ConfigError(f"ray object_store_mb = {object_store_mb!r} is invalid; allowed: an integer >= 80 "
                              f"(Ray's minimum object store is 75 MB)")
        if not (isinstance(cpus_per_task, (int, float)) and not isinstance(cpus_per_task, bool) and cpus_per_task > 0):
            raise ConfigError(f"ray cpus_per_task = {cpus_per_task!r} is invalid; allowed: a number > 0")
        self._ray = ray
        self._cpus_per_task = float(cpus_per_task)
        self._started = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False,
                         object_store_memory=int(object_store_mb) * 1024 * 1024, log_to_driver=False)
            self._started = True
        self._remote: dict[Callable, Any] = {}

    def map(self, fn: Callable[..., Any], tasks: Iterable[Sequence[Any]]) -> Iterator[Any]:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(num_cpus=self._cpus_per_task)(fn)
        refs = [remote.remote(*args) for args in tasks]    # all tasks of the batch run in parallel
        for ref in refs:                                   # ... and are collected in task order
            yield self._ray.get(ref)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


def make_executor(name: str = "sequential", *, address: str | None = None, num_cpus: int | None = None,
                  object_store_mb: int = 256, cpus_per_task: float = 1.0):
    """"sequential" -> SequentialExecutor(); "ray" -> RayExecutor(address, num_cpus, object_store_mb, cpus_per_task)."""
    if name == "sequential":
        if address is not None or num_cpus is not None:
            raise ConfigError("ray address / num_cpus were given but executor is 'sequential'; use executor='ray'")
        return SequentialExecutor()
    if name == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus, object_store_mb=object_store_mb,
                           cpus_per_task=cpus_per_task)
    raise ConfigError(f"executor = {name!r} is unknown; allowed: {list(EXECUTORS)}")
