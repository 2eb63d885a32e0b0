"""Two ONNX models on this machine: can both keep their rate, and at what
cost in accuracy? The first script to run with the Python package.

    pip install ./python matplotlib
    python examples/python/first_plan.py                      # the repository's tiny models
    python examples/python/first_plan.py det.onnx kws.onnx \\
        --smaller-a det_256.onnx@0.91 --periods 100ms,30ms    # your own

Each model is inspected (a config that runs it as it is), the two are put
on one device with a storage budget and a tolerated miss rate zeta, every
stage is profiled here, rtmdl plans variants and priorities, and the plan
is simulated against the deadline-monotonic baseline (DM-NMC) and run for
real under both. It writes a plot of the response times (simulated
percentiles as markers, measured distributions as curves) and prints the
table; the accuracy of a variant is yours to give (FILE@ACCURACY), 1.0
otherwise.
"""

import argparse
import os
import pathlib
import sys

try:
    import tomllib  # Python 3.11+
except ImportError:  # pragma: no cover
    import tomli as tomllib  # type: ignore

import rtmdl

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"


def image_size(info):
    """(height, width) of a model's image input [1, 3, H, W], else None."""
    for i, shape in zip(info.inputs, info.tried_shapes):
        if i.dtype == "FLOAT" and len(shape) == 4 and shape[1] == 3:
            return shape[2], shape[3]
    return None


def model_arg(text):
    """FILE or FILE@ACCURACY."""
    path, _, acc = text.partition("@")
    return pathlib.Path(path).resolve(), float(acc) if acc else 1.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_a", nargs="?", type=model_arg, default=(MODELS / "tiny_lights_w100.onnx", 0.95))
    ap.add_argument("model_b", nargs="?", type=model_arg, default=(MODELS / "tiny_signs_w100.onnx", 0.97))
    ap.add_argument("--smaller-a", type=model_arg, help="a smaller variant of model A (FILE@ACCURACY)")
    ap.add_argument("--smaller-b", type=model_arg, help="a smaller variant of model B (FILE@ACCURACY)")
    ap.add_argument("--periods", default="33ms,50ms", help="the two tasks' periods (default 33ms,50ms)")
    ap.add_argument("--zeta", type=float, default=0.05, help="tolerated deadline-miss rate (default 0.05)")
    ap.add_argument("--storage", default="16 MiB", help="storage budget for the variants (default 16 MiB)")
    ap.add_argument("--engine", default="auto", choices=rtmdl.ENGINES)
    ap.add_argument("--real", default="5s", help="length of each real run (default 5s; 0 for none)")
    ap.add_argument("--quick", action="store_true", help="a short profile (10 runs, no calibration)")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("target/rtmdl-python-example"))
    a = ap.parse_args(argv)
    defaults = a.model_a[0].parent == MODELS and a.model_b[0].parent == MODELS
    if defaults and a.smaller_a is None and a.smaller_b is None:
        a.smaller_a = (MODELS / "tiny_lights_w050.onnx", 0.91)
        a.smaller_b = (MODELS / "tiny_signs_w050.onnx", 0.94)
    periods = a.periods.split(",")
    if len(periods) != 2:
        ap.error("--periods: expected two periods, e.g. 33ms,50ms")
    a.out.mkdir(parents=True, exist_ok=True)

    # 1. Each model as rtmdl inspect sees it: a config that runs it.
    config = {"platform": {"cpu_workers": 2, "gpu_lanes": 1, "storage_budget": a.storage}, "models": {}, "tasks": []}
    for key, (path, accuracy), smaller, period in [
        ("a", a.model_a, a.smaller_a, periods[0]),
        ("b", a.model_b, a.smaller_b, periods[1]),
    ]:
        info = rtmdl.inspect(path, engine=a.engine, runs=3)
        if info.config is None:
            sys.exit(f"{path}: no engine ran it; see `rtmdl inspect {path}`")
        one = tomllib.loads(info.config)
        (name, model), = one["models"].items()
        variants = model["variants"]
        variants[0].update(name="full", accuracy=accuracy)
        task = one["tasks"][0]
        size = image_size(info)
        if smaller is not None:
            small = dict(variants[0], name="smaller", file=str(smaller[0]), accuracy=smaller[1])
            small_size = image_size(rtmdl.inspect(smaller[0], engine=a.engine, runs=1))
            if size and small_size and small_size != size:
                # Inputs of different sizes: camera frames resized per
                # variant by a CPU stage before the inference.
                model["stages"].insert(0, {"name": "pre", "on": "cpu", "function": "resize_normalize",
                                           "params": {"height": size[0], "width": size[1]}})
                small["params"] = {"pre": {"height": small_size[0], "width": small_size[1]}}
                task["source"] = {"kind": "synthetic_frames", "width": 320, "height": 240}
            variants.append(small)
        config["models"][name] = model
        task.update(period=period, max_miss_rate=a.zeta)
        config["tasks"].append(task)
        print(f"model {key}: {path.name} as task `{task['name']}` every {period}, {len(variants)} variant(s)")

    # 2. Every stage measured on this machine.
    profile = a.out / "profile.json"
    runs, calibrate = (10, "0s") if a.quick else (50, "5s")
    rtmdl.profile(config, engine=a.engine, runs=runs, calibrate=calibrate, out=profile, rt=False, progress=True)

    # 3. Variants and priorities for the storage budget and zeta.
    plan_file = a.out / "plan.toml"
    p = rtmdl.plan(config, profile=profile, out=plan_file, progress=True)
    print(f"plan: {'feasible' if p.feasible else 'not feasible'}, accuracy loss {p.accuracy_loss * 100:.2f} %")
    for t in p.tasks:
        print(f"  {t.name:<20} variant {t.variant:<8} priority {t.priority}  predicted misses {t.predicted_miss_rate * 100:.2f} %")

    # 4. The plan against the baseline: simulated, and (with --real) for real.
    arms = {
        "rtmdl+plan": dict(plan=plan_file, policy="rtmdl"),
        "DM-NMC": dict(policy="dm", variants="original"),
    }
    simulated = {k: rtmdl.simulate(config, profile=profile, **kw) for k, kw in arms.items()}
    measured = {}
    if a.real not in ("0", "0s"):
        for k, kw in arms.items():
            seen = []
            measured[k] = (
                rtmdl.run(config, profile=profile, duration=a.real, engine=a.engine, on_result=seen.append, **kw),
                seen,
            )
    print(f"\n{'arm':<12} {'task':<20} {'sim miss %':>10} {'sim p99 ms':>10} {'real miss %':>11} {'real p99 ms':>11}")
    for k in arms:
        for i, t in enumerate(simulated[k].tasks):
            real = measured[k][0].tasks[i] if k in measured else None
            r_miss = f"{real.miss_rate * 100:11.2f}" if real else f"{'-':>11}"
            r_p99 = f"{real.response_ms.p99:11.3f}" if real else f"{'-':>11}"
            print(f"{k:<12} {t.name:<20} {t.miss_rate * 100:10.2f} {t.response_ms.p99:10.3f} {r_miss} {r_p99}")
    for k, (report, _) in measured.items():
        i = report.get("interference")
        if i:
            steal = "?" if i.steal is None else f"{i.steal * 100:.1f} %"
            print(f"interference during {k}: {i.stalls} stall(s) >= {i.stall_ms:.1f} ms, wake-up late max {i.late_max_ms:.2f} ms, steal {steal}")

    # 5. The response times, drawn.
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(pip install matplotlib for the plot)")
        return 0
    tasks = [t.name for t in simulated["rtmdl+plan"].tasks]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, (i, name) in zip(axes[0], enumerate(tasks)):
        for k, colour in zip(arms, ["tab:blue", "tab:orange"]):
            sim = simulated[k].tasks[i].response_ms
            ax.plot([sim.p50, sim.p99, sim.max], [0.5, 0.99, 1.0], "o", color=colour, label=f"{k} simulated p50/p99/max")
            if k in measured:
                xs = sorted(r.response_ms for r in measured[k][1] if r.task == name)
                if xs:
                    ys = [(j + 1) / len(xs) for j in range(len(xs))]
                    ax.step(xs, ys, where="post", color=colour, label=f"{k} measured ({len(xs)} jobs)")
        deadline = next(t for t in config["tasks"] if t["name"] == name)["period"]
        ax.set_title(f"{name} (deadline {deadline})")
        ax.set_xlabel("response time (ms)")
        ax.set_ylabel("share of jobs")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    png = a.out / "response-times.png"
    fig.savefig(png, dpi=100)
    print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
