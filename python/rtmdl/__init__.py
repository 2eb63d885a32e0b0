"""rtmdl from Python: plan, simulate, analyse, profile and run periodic
deep-learning tasks on one device, with rtmdl's Rust core doing the work.

Every function takes a config as a path (``str`` or ``os.PathLike``), as
TOML text, or as a ``dict`` of the same fields (``rtmdl explain`` lists
them), and returns plain objects with the fields of the JSON the matching
``rtmdl`` command writes with ``--json`` (see ARCHITECTURE.md), readable as
attributes (``report.tasks[0].miss_rate``) or keys; reports have a
``to_pandas()`` where pandas is installed.

Errors are exceptions with the command line's text: :class:`ConfigError`
(file, line, field), :class:`ModelError` (the path), :class:`PlanInfeasible`,
:class:`RunError`; wrong argument types raise ``TypeError`` and unknown
names ``ValueError``, before any work starts.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from . import _rtmdl
from ._rtmdl import ConfigError, ModelError, PlanInfeasible, RtmdlError, RunError

__all__ = [
    "Result",
    "simulate",
    "compare",
    "analyze",
    "plan",
    "profile",
    "run",
    "inspect",
    "load",
    "POLICIES",
    "VARIANTS",
    "ENGINES",
    "RtmdlError",
    "ConfigError",
    "ModelError",
    "PlanInfeasible",
    "RunError",
]

#: Scheduling policies ``policy=`` accepts.
POLICIES: Tuple[str, ...] = tuple(_rtmdl.POLICIES)
#: What ``variants=`` accepts.
VARIANTS: Tuple[str, ...] = ("plan", "original", "compressed")
#: Inference engines ``engine=`` accepts.
ENGINES: Tuple[str, ...] = ("auto", "tract", "ort", "onnxruntime", "cuda")

Config = Union[str, "os.PathLike[str]", Mapping[str, Any]]
Duration = Union[str, int, float]


class Result(dict):
    """A JSON object of rtmdl's, readable as attributes or keys."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no field {name!r}; fields: {', '.join(self.keys())}"
            ) from None

    def to_pandas(self):
        """The per-task rows (``tasks``) as a pandas DataFrame."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from e
        rows = self.get("tasks")
        if not isinstance(rows, list):
            raise ValueError("this result has no per-task rows")
        return pd.json_normalize(rows)


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Result({k: _wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _parse(text: str) -> Any:
    return _wrap(json.loads(text))


def _source(config: Config) -> Tuple[str, bool]:
    """(source, is_text): a path, TOML text, or a dict made TOML text."""
    if isinstance(config, Mapping):
        return _dict_to_toml(config), True
    if isinstance(config, os.PathLike):
        return os.fspath(config), False
    if isinstance(config, str):
        # TOML text has a newline or an `=`; a path has neither.
        if "\n" in config or "=" in config:
            return config, True
        return config, False
    raise TypeError(
        f"config: expected a path, TOML text or a dict, got {type(config).__name__}"
    )


def _dict_to_toml(d: Mapping[str, Any]) -> str:
    try:
        import tomli_w  # type: ignore
    except ImportError:
        tomli_w = None
    if tomli_w is not None:
        return tomli_w.dumps(dict(d))
    # The native half turns JSON into TOML with the toml crate.
    return _rtmdl.json_to_toml(json.dumps(d))


def _path(value: Any, what: str) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"{what}: expected a path, got {type(value).__name__}")


def _duration(value: Optional[Duration], what: str) -> Optional[str]:
    """A duration as rtmdl's text: "60s", "500 ms"; a number is seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected a duration such as '60s' or seconds, got bool")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"{what}: the duration must be above 0, got {value}")
        return f"{value}s"
    if isinstance(value, str):
        return value
    raise TypeError(
        f"{what}: expected a duration such as '60s' or seconds, got {type(value).__name__}"
    )


def _choice(value: Any, allowed: Tuple[str, ...], what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected one of {', '.join(allowed)}, got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{what}: unknown {value!r}: expected one of {', '.join(allowed)}")
    return value


def _int(value: Any, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: expected an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{what}: expected at least {low}, got {value}")
    return value


def _callable(value: Any, what: str) -> Optional[Callable]:
    if value is not None and not callable(value):
        raise TypeError(f"{what}: expected a callable, got {type(value).__name__}")
    return value


def _tqdm_progress(label: str, progress: Any) -> Tuple[Optional[Callable], Callable[[], None]]:
    """`progress`: a callable, True (tqdm if installed), or None/False."""
    if progress is None or progress is False:
        return None, lambda: None
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None, lambda: None
        bar = tqdm(desc=label, total=0)

        def update(done: int, total: int, *what: str) -> None:
            bar.total = total
            bar.n = done
            if what:
                bar.set_postfix_str(what[0])
            bar.refresh()

        return update, bar.close
    return _callable(progress, "progress"), lambda: None


def load(config: Config, *, plan: Any = None, profile: Any = None) -> Result:
    """The task set as rtmdl reads it (platform, models, tasks), after the
    plan and profile: a check that the config loads, or its ConfigError."""
    source, text = _source(config)
    return _parse(
        _rtmdl.load_config(source, text, _path(plan, "plan"), _path(profile, "profile"))
    )


def simulate(
    config: Config,
    *,
    plan: Any = None,
    profile: Any = None,
    policy: str = "rtmdl",
    variants: str = "plan",
    duration: Optional[Duration] = None,
    seed: int = 1,
    why: bool = False,
) -> Result:
    """``rtmdl simulate``: one policy on a virtual clock. ``duration``
    defaults to the config's ``[run] duration``, else 60 s; jobs pending
    1 s after the last release are abandoned as missed, as in ``run``."""
    source, text = _source(config)
    return _parse(
        _rtmdl.simulate(
            source,
            text,
            _path(plan, "plan"),
            _path(profile, "profile"),
            _choice(policy, POLICIES, "policy"),
            _choice(variants, VARIANTS, "variants"),
            _duration(duration, "duration"),
            _int(seed, "seed"),
            bool(why),
        )
    )


def compare(
    config: Config,
    *,
    plan: Any = None,
    profile: Any = None,
    duration: Duration = "60s",
    seed: int = 1,
) -> List[Result]:
    """``rtmdl compare``: rtmdl+plan and every baseline, simulated on the
    same seed; one report per row, its ``label`` the row's name."""
    source, text = _source(config)
    return _parse(
        _rtmdl.compare(
            source,
            text,
            _path(plan, "plan"),
            _path(profile, "profile"),
            _duration(duration, "duration"),
            _int(seed, "seed"),
        )
    )


def analyze(
    config: Config,
    *,
    plan: Any = None,
    profile: Any = None,
    margin: float = 1.0,
    policy: str = "rtmdl",
) -> Result:
    """``rtmdl analyze``: a bound on every task's response time."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise TypeError(f"margin: expected a number, got {type(margin).__name__}")
    source, text = _source(config)
    return _parse(
        _rtmdl.analyze(
            source,
            text,
            _path(plan, "plan"),
            _path(profile, "profile"),
            float(margin),
            _choice(policy, POLICIES, "policy"),
        )
    )


def plan(
    config: Config,
    *,
    profile: Any = None,
    hard: bool = False,
    seed: int = 1,
    seeds: int = 3,
    population: int = 48,
    generations: int = 60,
    out: Any = None,
    check: bool = False,
    progress: Any = True,
    verify: Optional[Duration] = None,
    rounds: int = 3,
    engine: str = "auto",
    rt: bool = True,
) -> Result:
    """``rtmdl plan``: a variant and a priority for every task. The result
    has ``feasible``, ``accuracy_loss``, per task its ``variant``,
    ``priority`` and ``predicted_miss_rate`` (on fresh seeds), and
    ``plan_toml``, the plan file (written to ``out`` when given; pass it as
    ``plan=`` to the other functions). With ``check=True`` an infeasible
    (or, with ``verify``, unverified) plan raises :class:`PlanInfeasible`.
    ``progress``: True for a tqdm bar where tqdm is installed, or a
    callable ``(done, total)``.

    ``verify="5s"`` is ``rtmdl plan --verify 5s``: the plan runs for real
    ``rounds`` times; where a task's median misses exceed its zeta the
    model is updated from the runs and planned again (at most 3 tries).
    The result then has ``verified`` and ``tries`` (each with per-task
    ``checks``: predicted, measured median, its 95 % interval). Ctrl-C
    ends the real runs and raises ``KeyboardInterrupt``."""
    source, text = _source(config)
    out = _path(out, "out")
    update, close = _tqdm_progress("planning", progress)
    try:
        result = _parse(
            _rtmdl.plan(
                source,
                text,
                _path(profile, "profile"),
                bool(hard),
                _int(seed, "seed"),
                _int(seeds, "seeds", 1),
                _int(population, "population", 2),
                _int(generations, "generations", 1),
                update,
                _duration(verify, "verify"),
                _int(rounds, "rounds", 1),
                _choice(engine, ENGINES, "engine"),
                bool(rt),
            )
        )
    finally:
        close()
    if out is not None:
        with open(out, "w", encoding="utf-8") as f:
            f.write(result.plan_toml)
    if check and not result.feasible:
        raise PlanInfeasible(
            "no plan meets every constraint: " + "; ".join(result.diagnosis or ["see the tasks"])
        )
    if check and verify is not None and not result.verified:
        raise PlanInfeasible(
            f"no plan could be verified in {len(result.tries)} tries on {rounds} real round(s) each"
        )
    return result


def profile(
    config: Config,
    *,
    engine: str = "auto",
    runs: int = 50,
    threads: int = 1,
    calibrate: Duration = "5s",
    rt: bool = True,
    out: Any = None,
    progress: Any = True,
) -> Result:
    """``rtmdl profile``: every stage's time measured on this machine; pass
    the file written to ``out`` as ``profile=`` to the other functions."""
    source, text = _source(config)
    update, close = _tqdm_progress("profiling", progress)
    try:
        return _parse(
            _rtmdl.profile(
                source,
                text,
                _choice(engine, ENGINES, "engine"),
                _int(runs, "runs", 1),
                _int(threads, "threads", 1),
                _duration(calibrate, "calibrate") if calibrate not in (0, "0s") else "0s",
                bool(rt),
                _path(out, "out"),
                update,
            )
        )
    finally:
        close()


def run(
    config: Config,
    *,
    plan: Any = None,
    profile: Any = None,
    policy: str = "rtmdl",
    variants: str = "plan",
    duration: Optional[Duration] = None,
    engine: str = "auto",
    threads: int = 1,
    rt: bool = True,
    probe: bool = True,
    why: bool = False,
    seed: int = 1,
    on_result: Optional[Callable[[Result], Any]] = None,
) -> Result:
    """``rtmdl run``: the task set for real (threads, clock, engines), with
    the simulator's prediction beside every task (from ``profile`` when
    given). The GIL is released while it runs. ``on_result`` is called
    with each delivered job (task, seq, variant, released_ms, finished_ms,
    response_ms, on_time, answer, shape, values), from the calling thread;
    if it raises, the run stops and the exception propagates. Ctrl-C stops
    the releases and returns the report of what ran."""
    source, text = _source(config)
    callback = _callable(on_result, "on_result")
    wrapped = None if callback is None else (lambda line: callback(_wrap(line)))
    return _parse(
        _rtmdl.run(
            source,
            text,
            _path(plan, "plan"),
            _path(profile, "profile"),
            _choice(policy, POLICIES, "policy"),
            _choice(variants, VARIANTS, "variants"),
            _duration(duration, "duration"),
            _choice(engine, ENGINES, "engine"),
            _int(threads, "threads", 1),
            bool(rt),
            bool(probe),
            bool(why),
            _int(seed, "seed"),
            wrapped,
        )
    )


def inspect(model: Any, *, engine: str = "auto", runs: int = 10) -> Result:
    """``rtmdl inspect``: a model's inputs and outputs, and for each engine
    whether it loads and how long an inference takes."""
    path = _path(model, "model")
    if path is None:
        raise TypeError("model: expected a path, got None")
    return _parse(_rtmdl.inspect(path, _choice(engine, ENGINES, "engine"), _int(runs, "runs", 1)))
