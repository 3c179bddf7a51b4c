"""cli/queue/command.py: arguments, usage errors, dry run, a full run, Ctrl-C, registration."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.cli.app import main as ld_portrait_main
from comfyui_ld_portrait.dataset import LOCK_NAME, DatasetWriter, index_id

from helpers.fake_comfy_server import FakeComfyServer
from helpers.queue_runs import GRAPH, cli, ids_in


@pytest.fixture
def api(tmp_path):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(GRAPH))
    return path


def test_usage_errors(tmp_path, api):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    code, _, err = cli([str(ui), "--count", "2"])
    assert code == 2 and "UI-format" in err
    no_template = tmp_path / "no_template.json"
    no_template.write_text(json.dumps({k: v for k, v in GRAPH.items() if k != "2"}))
    code, _, err = cli([str(no_template), "--count", "2"])
    assert code == 2 and "no LDPPromptTemplate node" in err and "--allow-no-template" in err
    code, _, err = cli([str(api)])
    assert code == 2 and "--count K" in err
    code, _, err = cli([str(api), "--range", "1:2", "--count", "3"])
    assert code == 2 and "not both" in err
    code, _, err = cli([str(api), "--count", "-1"])
    assert code == 2
    code, _, _ = cli(["--help"])
    assert code == 0


@pytest.mark.parametrize("text, message", [
    ("0:99999999999999999999", "B must be at most 2\\*\\*53 = 9007199254740992"),
    ("0:" + "9" * 5000, "far above the largest sample index"),
    ("7:3", "0 <= A <= B"), ("a:b", "not a whole number"), ("5", "A:B"), ("-1:2", "0 <= A"),
])
def test_range_is_validated(text, message):
    with pytest.raises(ValueError, match=message):
        sq.parse_range(text)


def test_range_bounds_on_the_command_line(api):
    code, _, err = cli([str(api), "--range", "0:99999999999999999999", "--server", "h:1"])
    assert code == 2 and "at most 2**53" in err
    code, _, err = cli([str(api), "--start", str(2**53 - 1), "--count", "2", "--server", "h:1"])
    assert code == 2 and "--start + --count must be at most 2**53" in err
    assert sq.parse_range("3:7") == range(3, 7)
    assert sq.parse_range(f"0:{2**53}") == range(2**53)  # the bound itself is fine


def test_dry_run_of_the_largest_range_lists_nothing(api):
    # Counting and showing the first job must not walk 2**53 indices.
    code, out, err = cli([str(api), "--range", f"0:{2**53}", "--server", "127.0.0.1:9",
                          "--dry-run"])
    assert code == 0, err
    assert out.startswith(f"{2**53} job(s) to queue, 0 already complete")
    assert "inputs set for the first job (index 0, id 000000)" in out


def test_dry_run_and_full_run(tmp_path, api, fake, root):
    code, out, _ = cli([str(api), "--range", "10:13", "--dataset", str(root), "--server",
                        fake.url, "--seed", "3", "--dry-run"])
    assert code == 0 and "3 job(s) to queue" in out
    assert "node 2 (LDPPromptTemplate): index 0 -> 10" in out
    assert f"node 6 (KSampler): seed 123 -> {sq.job_seed(3, 10)}" in out
    assert fake.received == []
    summary_json = tmp_path / "summary.json"
    code, out, err = cli([str(api), "--start", "10", "--count", "3", "--dataset", str(root),
                          "--server", fake.url, "--poll", "0.02", "--seed", "3",
                          "--summary-json", str(summary_json)])
    assert code == 0, out + err
    assert "done             3" in out
    assert json.loads(summary_json.read_text())["done"] == 3
    assert all(g["2"]["inputs"]["seed"] == 3 for g in fake.received)


def test_dry_run_creates_nothing_in_the_dataset_root(tmp_path, api, root, fake):
    writer = DatasetWriter(root, durable=False)
    writer.write_sample(index_id(11), np.zeros((4, 4, 3)), np.ones((4, 4)))
    writer.write_sample(index_id(12), np.zeros((4, 4, 3)), np.ones((4, 4)), rejected=True)
    (root / LOCK_NAME).unlink()  # e.g. a dataset copied from another machine
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    code, out, err = cli([str(api), "--range", "10:14", "--dataset", str(root), "--server",
                          fake.url, "--dry-run"])
    assert code == 0, out + err
    assert "2 job(s) to queue, 2 already complete" in out
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert fake.requests == []
    probe = sq.DatasetProbe(root)
    assert (probe.status(index_id(11)), probe.status(index_id(12)), probe.status("000010")) == \
        ("accepted", "rejected", None)
    assert sq.DatasetProbe(tmp_path / "missing").status("000001") is None
    assert not (tmp_path / "missing").exists()
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_ld_portrait_queue_is_registered(api, fake, root):
    out, err = io.StringIO(), io.StringIO()
    code = ld_portrait_main(["queue", str(api), "--count", "2", "--dataset", str(root),
                             "--server", fake.url, "--poll", "0.02"], stdout=out, stderr=err)
    assert code == 0, out.getvalue() + err.getvalue()
    assert ids_in(root) == {index_id(0), index_id(1)}


def test_sigint_subprocess_exits_130_with_summary(api, output_dir, root):
    package_parent = str(Path(sq.__file__).resolve().parents[3])
    with FakeComfyServer(output_dir, exec_delay=0.1) as server:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            [sys.executable, "-m", "comfyui_ld_portrait.cli.queue", str(api), "--count", "40",
             "--dataset", str(root), "--server", server.url, "--poll", "0.02", "--grace", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=package_parent)
        try:
            deadline = time.monotonic() + 60
            while len(server.executed) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(server.executed) >= 2, "the subprocess did not start queueing"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        received = len(server.received)
    assert process.returncode == 130, out + err
    assert "stopping: no new jobs" in err and "Traceback" not in err
    assert "(interrupted)" in out and "unfinished" in out
    assert received < 40
    assert len(ids_in(root)) == len(server.executed)  # in-flight jobs were waited for
