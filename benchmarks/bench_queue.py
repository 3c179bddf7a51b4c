"""Benchmark: how busy ``ld-portrait queue`` keeps ComfyUI servers (the event-driven queue).

Fake ComfyUI servers (``tests/helpers/fake_comfy_server.py``: one job at a time, a fixed time
per job, ComfyUI's HTTP routes and websocket events) run in this process; the queue runs as
the real command in a child process (``ld-portrait queue GRAPH --count N --server ...``, every
other option at its default), so its wall time includes the start-up of the command. Per
scenario it prints:

* **busy**: the servers' summed execution time over ``servers x (last end - first start)``;
* **wall**: seconds from starting the command to its exit; **ideal**: ``jobs / servers x job
  time``;
* completion: jobs done per the summary, executions counted on the servers, and how many
  sample indices ran more than once (must be 0).

Scenarios (each measured in the same run as its baseline, ``--no-websocket``: the old
poll-only behaviour, status checks every ``--poll`` = 1 s):

1. 0.2 s jobs, 8 servers, 128 jobs: target busy >= 95 % with events;
2. 1 s jobs, 8 servers, 128 jobs: target wall <= 18.8 s with events (ideal 16 s);
3. the same two with every websocket refused (``/ws`` answers 404): the polling fallback must
   complete every job, none twice.

Run from the repository root::

    .venv/bin/python benchmarks/bench_queue.py [--servers 8] [--count 128] [--quick]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchtools  # noqa: F401  (puts tests/ on sys.path)
from helpers.fake_comfy_server import FakeComfyServer
from helpers.queue_runs import GRAPH

#: The command as the console script runs it.
_COMMAND = "import sys; from comfyui_ld_portrait.cli import main; sys.exit(main())"


def run_scenario(workdir: Path, *, servers: int, count: int, job_s: float, websocket: bool,
                 refuse_ws: bool) -> dict:
    fakes = [FakeComfyServer(None, exec_delay=job_s).start() for _ in range(servers)]
    for fake in fakes:
        fake.ws_refuse = refuse_ws
    graph_path = workdir / "graph.json"
    graph_path.write_text(json.dumps(GRAPH), encoding="utf-8")
    summary_path = workdir / "summary.json"
    argv = [sys.executable, "-c", _COMMAND, "queue", str(graph_path), "--count", str(count),
            "--summary-json", str(summary_path)]
    for fake in fakes:
        argv += ["--server", fake.url]
    if not websocket:
        argv.append("--no-websocket")
    started = time.monotonic()
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"))
        wall = time.monotonic() - started
    finally:
        for fake in fakes:
            fake.stop()
    if completed.returncode != 0:
        raise SystemExit(f"the queue exited {completed.returncode}:\n{completed.stderr[-2000:]}")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    spans = [span for fake in fakes for span in fake.spans]
    executed = collections.Counter(index for fake in fakes for index in fake.executed)
    first = min(start for _, start, _ in spans)
    last = max(end for _, _, end in spans)
    busy = sum(end - start for _, start, end in spans) / (servers * (last - first))
    return dict(wall=wall, busy=busy, span=last - first, done=summary["done"],
                executions=sum(executed.values()), twice=sum(1 for n in executed.values()
                                                               if n > 1),
                ws_connections=sum(fake.ws_connections for fake in fakes))


def _line(name: str, result: dict, ideal: float) -> str:
    return (f"  {name:<28} busy {100 * result['busy']:5.1f} %  wall {result['wall']:6.2f} s  "
            f"(ideal {ideal:.1f} s, span {result['span']:.2f} s)  done {result['done']}, "
            f"executions {result['executions']}, run twice {result['twice']}, "
            f"websockets {result['ws_connections']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=8)
    parser.add_argument("--count", type=int, default=128)
    parser.add_argument("--quick", action="store_true",
                        help="only the 0.2 s jobs (about 20 s instead of 80 s)")
    args = parser.parse_args(argv)
    print(f"ld-portrait queue, {args.servers} fake servers, {args.count} jobs; machine load "
          f"{os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    job_times = (0.2,) if args.quick else (0.2, 1.0)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for job_s in job_times:
            ideal = args.count / args.servers * job_s
            print(f"{job_s:g} s jobs:")
            results = {}
            for name, websocket, refuse in (("events (default)", True, False),
                                            ("baseline: --no-websocket", False, False),
                                            ("websockets refused", True, True)):
                results[name] = run_scenario(workdir, servers=args.servers, count=args.count,
                                             job_s=job_s, websocket=websocket,
                                             refuse_ws=refuse)
                print(_line(name, results[name], ideal), flush=True)
            events, base = results["events (default)"], results["baseline: --no-websocket"]
            print(f"  events vs baseline: busy x{events['busy'] / base['busy']:.2f}, "
                  f"wall x{base['wall'] / events['wall']:.2f} faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
