"""The Python package against the CLI: each function on the examples, the
same fields as the command's --json, its errors, a real run and Ctrl-C.

Run from the repository root after `pip install ./python`:
    python -m pytest python/tests
The CLI they compare against is `target/debug/rtmdl` (built by the test
command), or $RTMDL_BIN.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

import rtmdl

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def cli(*args):
    exe = os.environ.get("RTMDL_BIN") or str(ROOT / "target" / "debug" / "rtmdl")
    if not os.path.exists(exe):
        subprocess.run(
            ["cargo", "build", "--quiet", "--bin", "rtmdl"], cwd=ROOT, check=True
        )
    out = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def same_fields(a, b, path="report"):
    """`a` (from Python) equals `b` (the CLI's JSON): every field, floats
    to 1e-9."""
    if isinstance(b, dict):
        assert isinstance(a, dict), path
        assert set(a) == set(b), f"{path}: {set(a) ^ set(b)}"
        for k in b:
            same_fields(a[k], b[k], f"{path}.{k}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same_fields(x, y, f"{path}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def test_simulate_is_the_clis_simulate():
    report = rtmdl.simulate(EXAMPLES / "light.toml", duration="5s", seed=3)
    same_fields(
        report,
        json.loads(cli("simulate", EXAMPLES / "light.toml", "--duration", "5s", "--seed", "3", "--json", "-")),
    )
    assert report.tasks[0].miss_rate >= 0.0
    assert report.tasks[0].name == "traffic_light"


def test_compare_is_the_clis_compare_with_row_labels():
    rows = rtmdl.compare(EXAMPLES / "light.toml", duration="3s")
    cli_rows = json.loads(cli("compare", EXAMPLES / "light.toml", "--duration", "3s", "--json", "-"))
    assert [r.label for r in rows][:4] == ["rtmdl+plan", "DM-NMC", "DM-MC", "UM-NMC"]
    for r, c in zip(rows, cli_rows):
        r = dict(r)
        del r["label"]
        same_fields(r, c)


def test_analyze_is_the_clis_analyze():
    a = rtmdl.analyze(EXAMPLES / "light.toml")
    same_fields(a, json.loads(cli("analyze", EXAMPLES / "light.toml", "--json", "-")))
    assert a.tasks, "one bound per task"


def test_plan_writes_a_plan_the_others_take(tmp_path):
    seen = []
    p = rtmdl.plan(
        EXAMPLES / "light.toml",
        generations=4,
        population=8,
        seeds=1,
        out=tmp_path / "plan.toml",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert p.feasible in (True, False)
    assert {t.name for t in p.tasks} == {"traffic_light", "traffic_sign"}
    assert seen and seen[-1][0] <= seen[-1][1], "progress was reported"
    planned = rtmdl.simulate(EXAMPLES / "light.toml", plan=tmp_path / "plan.toml", duration="2s")
    variants = {t.name: t.variant for t in planned.tasks}
    assert variants == {t.name: t.variant for t in p.tasks}


def test_config_as_toml_text_and_as_dict():
    text = (EXAMPLES / "light.toml").read_text()
    from_text = rtmdl.simulate(text, duration="2s")
    from_path = rtmdl.simulate(EXAMPLES / "light.toml", duration="2s")
    assert from_text.tasks == from_path.tasks
    d = {
        "platform": {"cpu_workers": 1, "gpu_lanes": 1},
        "models": {
            "m": {
                "stages": [{"name": "infer", "on": "gpu"}],
                "variants": [{"name": "v", "accuracy": 0.9, "times": {"infer": "2 ms"}}],
            }
        },
        "tasks": [{"name": "t", "model": "m", "period": "10 ms"}],
    }
    r = rtmdl.simulate(d, duration="1s")
    assert r.tasks[0].name == "t" and r.tasks[0].jobs == 100


def test_to_pandas_has_one_row_per_task():
    pd = pytest.importorskip("pandas")
    df = rtmdl.simulate(EXAMPLES / "light.toml", duration="1s").to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df["name"]) == ["traffic_light", "traffic_sign"]


def test_a_malformed_config_raises_the_config_error_with_its_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((EXAMPLES / "light.toml").read_text().replace("cpu_workers = 2", "cpu_workers = \"two\""))
    with pytest.raises(rtmdl.ConfigError) as e:
        rtmdl.simulate(bad)
    line = next(i for i, l in enumerate(bad.read_text().splitlines(), 1) if "cpu_workers" in l)
    assert f"{bad}:{line}:" in str(e.value)
    assert "cpu_workers" in str(e.value)
    assert isinstance(e.value, rtmdl.RtmdlError)


def test_a_missing_model_raises_the_model_error_with_its_path(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(rtmdl.ModelError) as e:
        rtmdl.inspect(missing)
    assert str(missing) in str(e.value)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        (EXAMPLES / "tiny-real.toml").read_text().replace("models/tiny_lights_w100.onnx", str(missing))
    )
    with pytest.raises(rtmdl.ModelError) as e:
        rtmdl.run(cfg, duration="300ms", engine="tract", rt=False, probe=False)
    assert str(missing) in str(e.value)


def test_wrong_argument_types_and_names_fail_before_any_work():
    with pytest.raises(TypeError, match="config"):
        rtmdl.simulate(42)
    with pytest.raises(ValueError, match="rtmdl, dm"):
        rtmdl.simulate(EXAMPLES / "light.toml", policy="fastest")
    with pytest.raises(TypeError, match="seed"):
        rtmdl.simulate(EXAMPLES / "light.toml", seed="1")
    with pytest.raises(ValueError, match="duration"):
        rtmdl.simulate(EXAMPLES / "light.toml", duration="soon")
    with pytest.raises(ValueError, match="engine"):
        rtmdl.run(EXAMPLES / "tiny-real.toml", engine="fast")


def test_inspect_reads_a_model():
    info = rtmdl.inspect(EXAMPLES / "models" / "tiny_signs_w100.onnx", engine="tract", runs=1)
    assert info.inputs and info.outputs
    assert any(e.latency_ms is not None for e in info.engines)


def test_a_short_real_run_accounts_every_job_and_hands_results_to_the_callback():
    results = []
    r = rtmdl.run(
        EXAMPLES / "tiny-real.toml",
        duration="400ms",
        engine="tract",
        rt=False,
        probe=False,
        on_result=results.append,
    )
    for t in r.tasks:
        assert t.jobs > 0
        assert t.failed == 0
        assert t.completed <= t.jobs
    on_time = sum(t.completed for t in r.tasks)
    assert on_time > 0
    # One callback per delivered job: on time (the report's `completed`)
    # or late (a miss that still finished, on a loaded machine).
    assert sum(x.on_time for x in results) == on_time
    assert len(results) <= sum(t.jobs - t.dropped for t in r.tasks)
    assert {x.task for x in results} <= {t.name for t in r.tasks}
    assert all(x.response_ms >= 0 for x in results)


def test_ctrl_c_stops_a_real_run_and_returns_its_report():
    # SIGINT to this process 0.5 s into a 30 s run.
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        r = rtmdl.run(
            EXAMPLES / "tiny-real.toml", duration="30s", engine="tract", rt=False, probe=False
        )
    finally:
        timer.cancel()
    periods_s = 0.033
    jobs = max(t.jobs for t in r.tasks)
    assert 0 < jobs < 10 / periods_s, f"stopped early: {jobs} jobs"


def test_ctrl_c_ends_plan_verify_s_real_runs():
    # SIGINT 0.5 s into a verify loop of 3 rounds of 30 s runs: the runs
    # end and KeyboardInterrupt is raised, long before 90 s.
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            rtmdl.plan(
                EXAMPLES / "tiny-real.toml",
                generations=3,
                population=8,
                seeds=1,
                verify="30s",
                engine="tract",
                rt=False,
                progress=False,
            )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 30


def test_the_first_example_runs_end_to_end(tmp_path):
    """examples/python/first_plan.py, quick: inspect, profile, plan,
    simulate against DM-NMC, a short real run of each, the plot."""
    out = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "python" / "first_plan.py"),
            "--quick",
            "--real",
            "1s",
            "--engine",
            "tract",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "plan: feasible" in out.stdout, out.stdout
    rows = [l for l in out.stdout.splitlines() if l.startswith(("rtmdl+plan ", "DM-NMC "))]
    assert len(rows) == 4, out.stdout
    assert (tmp_path / "plan.toml").exists() and (tmp_path / "profile.json").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "response-times.png").stat().st_size > 10_000


def test_plan_verify_runs_the_plan_for_real_in_rounds(tmp_path):
    p = rtmdl.plan(
        EXAMPLES / "tiny-real.toml",
        generations=3,
        population=8,
        seeds=1,
        verify="300ms",
        rounds=2,
        engine="tract",
        rt=False,
        progress=False,
    )
    assert isinstance(p.verified, bool) and p.rounds == 2
    assert 1 <= len(p.tries) <= 3
    if p.verified:
        assert any(t.verified for t in p.tries)
    for t in p.tries:
        assert {c.name for c in t.checks} == {"traffic_light", "traffic_sign"}
        for c in t.checks:
            assert c.ci_low <= c.measured <= c.ci_high
    with pytest.raises(ValueError, match="rounds"):
        rtmdl.plan(EXAMPLES / "tiny-real.toml", verify="1s", rounds=0)
