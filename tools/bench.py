"""Benchmarks: what the offline plan costs, how it grows with a site, and against what floor.

    python -m tools.bench [--runs N] [--out docs/benchmarks.md]

Every figure is the median of several runs of a fresh process, timed side by side in the
same invocation:

- the import floor: a process that only imports the SDK modules the plan loads (the list
  is taken from a real plan run, so it is exactly those modules);
- the plan of the espsrc stack, and of generated stacks with 3, 30 and 300 nodes: wall
  time (perf_counter around the process) and peak memory (the child's maximum RSS, from
  wait4), without the chart render (`--no-render`), which does not grow with a site;
- the chart render: the espsrc plan with it (`--require-render`) against the plan without,
  their runs alternating;
- the same program shape with nothing of ours around it: a bare script that registers the
  same resources under the SDK's stock mocks, at 3 and 300 nodes: the SDK's own cost per
  node, the floor for ours;
- the deploy graph at 3, 30 and 300 nodes: resources, the longest chain of dependent
  custom resources, and the widest level (steps that can run at once);
- where the time goes: each part of the plan timed inside one process, the bare SDK
  program timed the same way in a process of its own, and a profile of the plan at the
  largest size, by package.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sitectl.mockrun import PROJECT_DIR

NODE_COUNTS = (3, 30, 300)
QUICK_COUNTS = (3, 6, 12)
# The SDKs' packages (with what they themselves import): the modules of the import floor.
# pydantic is the program's own choice, not the SDKs', so it is not part of the floor.
SDK_PACKAGES = ("pulumi", "pulumi_kubernetes", "pulumi_openstack", "pulumi_command",
                "pulumi_random", "pulumi_policy", "yaml", "grpc", "google")  # fmt: skip


@dataclass
class Sample:
    seconds: float
    peak_kb: int


def measure(argv: list[str], runs: int) -> list[Sample]:
    """Run `argv` `runs` times; wall time and peak RSS (KiB, from wait4) of each run."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise subprocess.CalledProcessError(child.returncode, argv)
        samples.append(Sample(elapsed, usage.ru_maxrss))
    return samples


def median(samples: list[Sample]) -> tuple[float, int]:
    return (
        statistics.median(s.seconds for s in samples),
        int(statistics.median(s.peak_kb for s in samples)),
    )


def stack_with_nodes(count: int, directory: Path) -> Path:
    """The espsrc stack file with `count` generated nodes."""
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.espsrc.yaml").read_text())
    nodes = doc["config"]["jupyterhub-platform:nodes"]
    nodes["hosts"] = [
        {"name": f"node-{i:04d}", "address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256 + 1}"}
        for i in range(count)
    ]
    path = directory / f"Pulumi.nodes{count}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def plan_argv(stack_file: Path, out: Path, render: bool = False) -> list[str]:
    return [sys.executable, "-m", "sitectl", "plan", "bench", "--stack-file", str(stack_file),
            "--out", str(out), "--require-render" if render else "--no-render"]  # fmt: skip


def render_unavailable(stack_file: Path, out: Path) -> str | None:
    """Why the plan cannot render the chart here (no Helm 3, no package), or None."""
    result = subprocess.run(
        plan_argv(stack_file, out, render=True),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return None
    return result.stderr.strip().removeprefix("error: ") or f"exit {result.returncode}"


def floor_modules(stack_file: Path, out: Path) -> list[str]:
    """The SDK modules a plan run has loaded when it exits."""
    probe = (
        "import runpy, sys, json\n"
        f"sys.argv = {plan_argv(stack_file, out)[2:]!r}\n"
        "sys.argv[0] = 'sitectl'\n"
        "try:\n"
        "    runpy.run_module('sitectl', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"packages = {SDK_PACKAGES!r}\n"
        "names = sorted(m for m in sys.modules if m.split('.')[0] in packages)\n"
        "sys.stderr.write(json.dumps(names))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(result.stderr.strip().splitlines()[-1]))


def graph_figures(count: int) -> dict[str, int]:
    """Resources, longest chain and widest level of the program's deploy graph."""
    from tests.sites import run, with_hosts
    from tools.graph import dependency_graph, longest_chain, widest_level

    result = run(with_hosts(count)).ok()
    graph = dependency_graph(result)
    return {
        "resources": len(graph),
        "longest_chain": longest_chain(graph),
        "widest_level": widest_level(graph),
    }


PHASE_SCRIPT = """
import asyncio, gc, json, statistics, sys, time
from pathlib import Path

mode, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
stacks = json.loads(sys.argv[4])

def bare(nodes):
    import pulumi
    from pulumi.runtime.settings import ROOT
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await
    from tools import bare_sdk
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ROOT.set(None)
    pulumi.runtime.set_mocks(bare_sdk.EchoMocks(), project="bare", stack="bench")
    t = time.perf_counter()
    _sync_await(run_pulumi_func(lambda: bare_sdk.program(nodes)))
    elapsed = time.perf_counter() - t
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    return {"bare SDK program": elapsed}

def ours(nodes):
    from sitectl import plan as P
    times = {}
    t = time.perf_counter(); plan = P.build_plan("bench", Path(stacks[str(nodes)]), {})
    times["program under mocks, recorded"] = time.perf_counter() - t
    t = time.perf_counter(); P.apply_policies(plan, None)
    times["policy pack"] = time.perf_counter() - t
    t = time.perf_counter(); files = P.write(plan, Path(out) / str(nodes))
    times["plan.json and rendered files"] = time.perf_counter() - t
    t = time.perf_counter(); P.tree(plan, Path(out), files)
    times["printed plan"] = time.perf_counter() - t
    return times

from sitectl import gc_tuning
if mode == "ours":
    gc_tuning.tune()  # as `python -m sitectl plan` does
else:  # the same settings, for a like-for-like comparison
    gc_tuning.tune(gc_tuning.SDK_MODULES)
part = ours if mode == "ours" else bare
counts = sorted(int(n) for n in stacks)
part(counts[0])  # warm up: lazy imports and first-use caches
result = {}
for nodes in counts:
    samples = []
    for _ in range(runs):
        gc.collect()
        samples.append(part(nodes))
    result[nodes] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
print(json.dumps(result))
"""

PROFILE_SCRIPT = """
import cProfile, json, pstats, sys
from pathlib import Path
from sitectl import gc_tuning, plan as P

gc_tuning.tune()
stack, out = sys.argv[1], Path(sys.argv[2])
P.write(P.build_plan("bench", Path(stack), {}), out)  # warm up
profile = cProfile.Profile()
profile.enable()
plan = P.build_plan("bench", Path(stack), {})
P.apply_policies(plan, None)
P.tree(plan, out, P.write(plan, out))
profile.disable()
stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
print(json.dumps([[f, line, name, tt] for (f, line, name), (_, _, tt, _, _) in stats.items()]))
"""

# Where a function's own time is counted, by its file's path (after our own code, which is
# anything of the project outside .venv): the first label whose fragment the path holds.
PROFILE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Pulumi SDK and providers", ("/site-packages/pulumi",)),
    ("gRPC and protobuf", ("/site-packages/grpc", "/site-packages/google")),
    ("asyncio and threads (the SDK's event loop)", ("/asyncio/", "/threading.py", "/concurrent/")),
    ("JSON and YAML", ("/json/", "/site-packages/yaml")),
    ("other packages", ("/site-packages/",)),
)
OUR_CODE = "our code (components, sitectl, policy, __main__.py)"


def _group(filename: str) -> str:
    if filename.startswith(("~", "<")):
        return "builtins (C functions) and frozen modules"
    if filename.startswith(str(PROJECT_DIR)) and "/.venv/" not in filename:
        return OUR_CODE
    for label, fragments in PROFILE_GROUPS:
        if any(fragment in filename for fragment in fragments):
            return label
    return "other standard library"


def profile_figures(stack: Path, out: Path) -> dict[str, Any]:
    """The plan at `stack` under cProfile: own time by package, and the top functions."""
    result = subprocess.run(
        [sys.executable, "-c", PROFILE_SCRIPT, str(stack), str(out)],
        cwd=PROJECT_DIR, capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    groups: dict[str, float] = {}
    for filename, _, _, own in rows:
        label = _group(filename)
        groups[label] = groups.get(label, 0.0) + own
    top = sorted(rows, key=lambda r: r[3], reverse=True)[:10]
    return {
        "groups": dict(sorted(groups.items(), key=lambda kv: kv[1], reverse=True)),
        "top": [
            [f"{Path(f).name}:{line}({name})" if not f.startswith("~") else name, own]
            for f, line, name, own in top
        ],
    }


def phase_figures(
    runs: int, stacks: dict[int, Path], out: Path, mode: str
) -> dict[int, dict[str, float]]:
    """Where the time goes, in one process after its imports: medians per part."""
    result = subprocess.run(
        [sys.executable, "-c", PHASE_SCRIPT, mode, str(runs), str(out),
         json.dumps({str(k): str(v) for k, v in stacks.items()})],
        cwd=PROJECT_DIR, capture_output=True, text=True, check=True,
    )  # fmt: skip
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return {int(k): v for k, v in data.items()}


def bench(runs: int, counts: tuple[int, ...] = NODE_COUNTS) -> dict[str, Any]:
    low, high = counts[0], counts[-1]
    results: dict[str, Any] = {"runs": runs, "counts": list(counts)}
    with tempfile.TemporaryDirectory(prefix="jhp-bench-") as tmp:
        directory = Path(tmp)
        espsrc = PROJECT_DIR / "Pulumi.espsrc.yaml"
        modules = floor_modules(espsrc, directory / "probe")
        # With the plan's garbage-collector settings, applied at the same point (see
        # sitectl/gc_tuning.py): the floor is what importing the SDKs costs the plan.
        floor_script = "from sitectl import gc_tuning\ngc_tuning.tune(gc_tuning.SDK_MODULES)\n"
        floor_script += "".join(f"import {m}\n" for m in modules)
        results["floor_modules"] = len(modules)

        # Side by side: floor and espsrc plan (with and without the chart render)
        # alternate, so all see the same machine.
        results["render_unavailable"] = render_unavailable(espsrc, directory / "probe-render")
        floor, plan, rendered = [], [], []
        for _ in range(runs):
            floor += measure([sys.executable, "-c", floor_script], 1)
            plan += measure(plan_argv(espsrc, directory / "espsrc"), 1)
            if results["render_unavailable"] is None:
                rendered += measure(plan_argv(espsrc, directory / "rendered", render=True), 1)
        results["floor"] = median(floor)
        results["espsrc"] = median(plan)
        results["espsrc_rendered"] = median(rendered) if rendered else None

        # Our plan and the bare SDK alternate at each size, so both see the same machine.
        # The bare SDK runs as defined (stock settings) and, for comparison, with the
        # plan's garbage-collector settings.
        results["plan"], results["bare"], results["bare_tuned"] = {}, {}, {}
        stacks = {}
        for count in counts:
            stacks[count] = stack = stack_with_nodes(count, directory)
            ours, bare, tuned = [], [], []
            bare_argv = [sys.executable, "-m", "tools.bare_sdk", str(count)]
            for _ in range(runs):
                ours += measure(plan_argv(stack, directory / f"out{count}"), 1)
                if count in (low, high):
                    bare += measure(bare_argv, 1)
                    tuned += measure([*bare_argv, "--tuned-gc"], 1)
            results["plan"][count] = median(ours)
            if bare:
                results["bare"][count] = median(bare)
                results["bare_tuned"][count] = median(tuned)
        ends = {low: stacks[low], high: stacks[high]}
        results["phases"] = phase_figures(runs, ends, directory / "phases", "ours")
        bare_phases = phase_figures(runs, ends, directory / "phases", "bare")
        for count in ends:
            results["phases"][count].update(bare_phases[count])
        results["profile"] = profile_figures(stacks[high], directory / "profile")

    results["graph"] = {count: graph_figures(count) for count in counts}
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def per_node(figures: dict[int, tuple[float, int]], low: int, high: int) -> float:
    return (figures[high][0] - figures[low][0]) / (high - low)


def _table(figures: dict[int, tuple[float, int]]) -> list[str]:
    rows = ["| nodes | wall time | peak memory |", "| ---: | ---: | ---: |"]
    rows += [
        f"| {count} | {seconds:.2f} s | {kb / 1024:.0f} MiB |"
        for count, (seconds, kb) in sorted(figures.items())
    ]
    return rows


def _phase_lines(phases: dict[int, dict[str, float]], low: int, high: int) -> list[str]:
    rows = [
        f"| part | {low} nodes | {high} nodes | per added node |",
        "| --- | ---: | ---: | ---: |",
    ]
    for part in phases[low]:
        step = (phases[high][part] - phases[low][part]) / (high - low)
        rows.append(
            f"| {part} | {phases[low][part] * 1000:.0f} ms | {phases[high][part] * 1000:.0f} ms "
            f"| {step * 1000:.2f} ms |"
        )
    return rows


def _why(results: dict[str, Any], low: int, high: int) -> str:
    phases = results["phases"]

    def step(part: str) -> float:
        return (phases[high][part] - phases[low][part]) / (high - low)

    program, bare = step("program under mocks, recorded"), step("bare SDK program")
    output = sum(
        step(part)
        for part in phases[low]
        if part not in ("program under mocks, recorded", "bare SDK program")
    )
    groups = results["profile"]["groups"]
    ours = groups.get(OUR_CODE, 0.0) / (sum(groups.values()) or 1.0)
    return (
        f"Registering and recording a node costs {program / bare:.2f}x what the bare SDK "
        "pays for the same registration, like for like. On top of it the plan does work the "
        f"bare script does not do at all, {output * 1000:.2f} ms a node: the policy checks, "
        "plan.json with every input, the node's two scripts as files, and the printed tree; "
        "producing that output is the plan's purpose. What remains between the whole "
        "processes is their size: the plan holds every registered resource, its inputs and "
        "outputs for the output and the policies, where the bare script keeps nothing (see "
        f"peak memory). The profile of the {high}-node plan: {ours:.0%} of the time is in our "
        "own code; the rest is the SDK registering resources (serialising inputs, resolving "
        "Outputs, a thread-pool round trip per resource to the mock monitor) and the event "
        "loop it runs on."
    )


def _render_lines(results: dict[str, Any]) -> list[str]:
    espsrc_s, espsrc_kb = results["espsrc"]
    if results["espsrc_rendered"] is None:
        return [
            f"Not measured: the chart cannot be rendered here ({results['render_unavailable']})."
        ]
    rendered_s, rendered_kb = results["espsrc_rendered"]
    return [
        "`helm template` of the chart, its objects validated against the Kubernetes API "
        "schemas and checked, written to `chart/` (`sitectl/render.py`); `helm version` runs "
        "while the program does and `helm template` while the policies do.",
        "",
        "| process | wall time | peak memory |",
        "| --- | ---: | ---: |",
        f"| `python -m sitectl plan espsrc --no-render` | {espsrc_s:.2f} s | "
        f"{espsrc_kb / 1024:.0f} MiB |",
        f"| `python -m sitectl plan espsrc` (the chart rendered) | {rendered_s:.2f} s | "
        f"{rendered_kb / 1024:.0f} MiB |",
        "",
        f"The render adds: **{rendered_s - espsrc_s:.2f} s** (goal: at most 0.6 s).",
    ]


def report(results: dict[str, Any]) -> str:
    counts: list[int] = results["counts"]
    low, high = counts[0], counts[-1]
    floor_s, floor_kb = results["floor"]
    espsrc_s, espsrc_kb = results["espsrc"]
    plan = results["plan"]
    bare = results["bare"]
    ours_per_node = per_node(plan, low, high)
    bare_per_node = per_node(bare, low, high)
    tuned_per_node = per_node(results["bare_tuned"], low, high)
    profile = results["profile"]
    total = sum(profile["groups"].values()) or 1.0
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m tools.bench`); do not edit by hand.",
        "",
        f"- When: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {machine()}",
        f"- Each figure: the median of {results['runs']} runs of a fresh process; "
        "wall time around the process, peak memory its maximum RSS.",
        "",
        "## The plan against the import floor",
        "",
        f"The floor imports the {results['floor_modules']} SDK modules a plan run loads "
        "(pulumi, its providers, pulumi-policy, and what they import) and nothing else.",
        "",
        "| process | wall time | peak memory |",
        "| --- | ---: | ---: |",
        f"| import floor | {floor_s:.2f} s | {floor_kb / 1024:.0f} MiB |",
        f"| `python -m sitectl plan espsrc --no-render` (3 nodes) | {espsrc_s:.2f} s | "
        f"{espsrc_kb / 1024:.0f} MiB |",
        "",
        f"Plan / floor: **{espsrc_s / floor_s:.2f}x** (goal: at most 1.5x), without the "
        "chart render (below).",
        "",
        "## The chart render",
        "",
        *_render_lines(results),
        "",
        "## The plan as a site grows",
        "",
        *_table(plan),
        "",
        f"Time per added node: {ours_per_node * 1000:.2f} ms ({low} to {high} nodes).",
        "",
        "## The SDK alone (`tools/bare_sdk.py`)",
        "",
        "The same resources, registered by a bare script under the SDK's stock mocks, with "
        "nothing of ours around them; its runs alternate with the plan's above.",
        "",
        *_table(bare),
        "",
        f"SDK cost per node: {bare_per_node * 1000:.2f} ms; ours: {ours_per_node * 1000:.2f} ms "
        f"({ours_per_node / bare_per_node:.2f}x).",
        "",
        "But the plan raises the garbage collector's thresholds after importing the SDKs "
        "(`sitectl/gc_tuning.py`), which the bare script, as defined, does not; like for like, "
        "with the same settings, the bare script costs:",
        "",
        *_table(results["bare_tuned"]),
        "",
        f"SDK cost per node with the plan's settings: {tuned_per_node * 1000:.2f} ms; ours: "
        f"{ours_per_node * 1000:.2f} ms: **{ours_per_node / tuned_per_node:.2f}x** "
        "(goal: at most 1.25x, judged like for like).",
        "",
        "## Where the time goes",
        "",
        "Each part of the plan, timed inside one process after its imports (medians), at "
        f"{low} and {high} nodes; the bare SDK program timed the same way in a process of "
        "its own, with the plan's garbage-collector settings.",
        "",
        *_phase_lines(results["phases"], low, high),
        "",
        f"Profile of the {high}-node plan (cProfile, after a warm-up run; own time by where "
        "the function lives):",
        "",
        "| where | share of the time |",
        "| --- | ---: |",
        *[f"| {label} | {own / total:.0%} |" for label, own in profile["groups"].items()],
        "",
        "The ten functions with the most own time: "
        + ", ".join(f"`{name}` {own / total:.1%}" for name, own in profile["top"])
        + ".",
        "",
        _why(results, low, high),
        "",
        "## The deploy graph",
        "",
        "| nodes | resources | longest chain | widest level |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {count} | {g['resources']} | {g['longest_chain']} | {g['widest_level']} |"
        for count, g in sorted(results["graph"].items())
    ]
    lines += [
        "",
        "Custom resources only. The longest chain is share, access rule, node mount, "
        "provisioner, storage class, release: the same for any number of nodes, since the "
        "node mounts wait for nothing but the share and run side by side.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "docs" / "benchmarks.md")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"sites of {', '.join(map(str, QUICK_COUNTS))} nodes: checks the benchmark runs",
    )
    args = parser.parse_args(argv)
    text = report(bench(args.runs, QUICK_COUNTS if args.quick else NODE_COUNTS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
