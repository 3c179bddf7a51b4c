"""ld-portrait queue against a fake ComfyUI server on 127.0.0.1 (tests/helpers/fake_comfy_server.py)."""
from __future__ import annotations

import copy
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.dataset import DatasetWriter, index_id, read_manifest, verify


from helpers import fake_comfy_server as fake_module
from helpers.fake_comfy_server import FakeComfyServer

DATASET = "ldp_test"

GRAPH = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"},
          "_meta": {"title": "Load Checkpoint"}},
    "2": {"class_type": "LDPPromptTemplate",
          "inputs": {"preset": "ld-portrait", "mode": "enumerate", "index": 0, "seed": 7}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": ["2", 0], "clip": ["1", 1]}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"text": ["2", 1], "clip": ["1", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024,
                                                      "batch_size": 1}},
    "6": {"class_type": "KSampler", "inputs": {
        "seed": 123, "steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0, "model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
        "latent_image": ["5", 0]}},
    "7": {"class_type": "KSamplerAdvanced", "inputs": {
        "noise_seed": ["2", 3], "add_noise": "enable", "steps": 20, "cfg": 5.0,
        "sampler_name": "euler", "scheduler": "normal", "start_at_step": 0,
        "end_at_step": 10000, "return_with_leftover_noise": "disable", "model": ["1", 0],
        "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["6", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}},
    "9": {"class_type": "LDPSaveDataset", "inputs": {
        "dataset_name": DATASET, "sample_index": 0, "fg": ["8", 0], "alpha": ["8", 0],
        "prompt": ["2", 0], "seed": ["2", 3], "keep_rejected": True}},
}


def fast_options(**overrides) -> sq.QueueOptions:
    """Short poll, back-off and grace times so a run takes a fraction of a second."""
    values = dict(poll_interval=0.02, http_timeout=2.0, backoff=0.05, backoff_max=0.2,
                  grace=5.0, verify_wait=1.0, server_down_after=3.0, give_up_after=10.0,
                  status_every=0)
    values.update(overrides)
    return sq.QueueOptions(**values)


def run_queue(servers, indices, root=None, *, graph=GRAPH, **overrides):
    stream = io.StringIO()
    runner = sq.QueueRunner(graph, indices, [s.url if hasattr(s, "url") else s for s in servers],
                            dataset_root=root, options=fast_options(**overrides), stream=stream)
    summary = runner.run()
    return summary, stream.getvalue()


@pytest.fixture
def output_dir(tmp_path):
    return tmp_path / "output"


@pytest.fixture
def root(output_dir):
    return output_dir / DATASET


@pytest.fixture
def fake(output_dir):
    server = FakeComfyServer(output_dir, exec_delay=0.03).start()
    yield server
    server.stop()


@pytest.fixture
def fake2(output_dir):
    server = FakeComfyServer(output_dir, exec_delay=0.03).start()
    yield server
    server.stop()


def _ids_in(root) -> set[str]:
    return DatasetWriter(root).complete_ids()


# ---- graphs -------------------------------------------------------------------------------

def test_rewrite_sets_index_and_seeds_and_leaves_everything_else_alone():
    original = copy.deepcopy(GRAPH)
    graph, changes = sq.rewrite_graph(GRAPH, 41, base_seed=5)
    assert GRAPH == original  # the input graph is not modified
    assert graph["2"]["inputs"]["index"] == 41 and graph["2"]["inputs"]["seed"] == 5
    assert graph["9"]["inputs"]["sample_index"] == 41
    assert graph["9"]["inputs"]["dataset_name"] == DATASET  # kept without dataset_name=
    assert graph["6"]["inputs"]["seed"] == sq.job_seed(5, 41) != 123
    assert graph["7"]["inputs"]["noise_seed"] == ["2", 3]  # linked: untouched
    assert graph["9"]["inputs"]["seed"] == ["2", 3]
    # Everything else is identical.
    expected = copy.deepcopy(GRAPH)
    expected["2"]["inputs"].update(index=41, seed=5)
    expected["9"]["inputs"]["sample_index"] = 41
    expected["6"]["inputs"]["seed"] = sq.job_seed(5, 41)
    assert graph == expected
    assert {(c.node_id, c.input_name) for c in changes} == {
        ("2", "index"), ("2", "seed"), ("9", "sample_index"), ("6", "seed")}
    assert "node 6 (KSampler): seed 123 ->" in "\n".join(map(str, changes))


def test_rewrite_options_and_seed_derivation():
    graph, _ = sq.rewrite_graph(GRAPH, 3, base_seed=9, keep_sampler_seed=True,
                                dataset_name="other")
    assert graph["6"]["inputs"]["seed"] == 123
    assert graph["9"]["inputs"]["dataset_name"] == "other"
    seeds = {sq.job_seed(0, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**53 for s in seeds)
    assert sq.job_seed(0, 1) != sq.job_seed(1, 0)  # neighbouring base seeds do not overlap
    # The seed the template node outputs for the sample, so literal and wired samplers agree.
    from comfyui_ld_portrait.prompting import sample_seed
    assert sq.job_seed(7, 3) == sample_seed(7, 3)
    no_template = {k: v for k, v in GRAPH.items() if k != "2"}
    with pytest.raises(sq.WorkflowError, match="no LDPPromptTemplate node"):
        sq.rewrite_graph(no_template, 0, base_seed=0)
    graph, _ = sq.rewrite_graph(no_template, 4, base_seed=0, allow_no_template=True)
    assert graph["9"]["inputs"]["sample_index"] == 4
    with pytest.raises(ValueError, match="index"):
        sq.rewrite_graph(GRAPH, -1, base_seed=0)


def test_load_workflow_refuses_ui_format_and_non_json(tmp_path):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"last_node_id": 3, "nodes": [{"id": 1}], "links": []}))
    with pytest.raises(sq.WorkflowError, match="UI-format.*Export \\(API\\)"):
        sq.load_workflow(ui)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(sq.WorkflowError, match="not JSON .*line 1"):
        sq.load_workflow(bad)
    with pytest.raises(sq.WorkflowError, match="does not exist"):
        sq.load_workflow(tmp_path / "missing.json")
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"1": {"inputs": {}}}))
    with pytest.raises(sq.WorkflowError, match="node '1' has no 'class_type'"):
        sq.load_workflow(odd)
    wrapped = tmp_path / "request.json"
    wrapped.write_text(json.dumps({"prompt": GRAPH, "client_id": "x"}))
    assert sq.load_workflow(wrapped) == GRAPH


def test_small_parsers():
    assert sq.parse_range("3:7") == range(3, 7)
    for text in ("7:3", "a:b", "5", "-1:2"):
        with pytest.raises(ValueError, match="--range"):
            sq.parse_range(text)
    assert sq.normalize_server_url("127.0.0.1:8188/") == "http://127.0.0.1:8188"
    assert sq.normalize_server_url("https://h/comfy/") == "https://h/comfy"
    with pytest.raises(ValueError, match="only http"):
        sq.normalize_server_url("ftp://h")
    ok, reason = sq.parse_history_entry({"status": {"status_str": "error", "messages": [
        ["execution_error", {"node_id": "6", "node_type": "KSampler",
                             "exception_type": "torch.OutOfMemoryError",
                             "exception_message": "CUDA out of memory"}]]}})
    assert not ok and reason == ("execution error in node 6 (KSampler): torch.OutOfMemoryError: "
                                 "CUDA out of memory")
    assert sq.parse_history_entry({"outputs": {}}) == (True, "")  # old hosts: no status


# ---- runs ---------------------------------------------------------------------------------

def test_submits_the_right_graphs_and_completes_the_dataset(fake, root):
    summary, log = run_queue([fake], range(5), root)
    assert summary.exit_code == 0, summary.to_text() + log
    assert (summary.done, summary.failed, summary.skipped) == (5, 0, 0)
    assert sorted(fake.received_indices()) == list(range(5))
    for graph in fake.received:
        index = graph["9"]["inputs"]["sample_index"]
        expected, _ = sq.rewrite_graph(GRAPH, index, base_seed=7)  # template's seed is the base
        assert graph == expected
    assert _ids_in(root) == {index_id(i) for i in range(5)}
    assert verify(root).ok and len(read_manifest(root)) == 5
    # Every submission carried the run's client id and our prompt id.
    assert fake.requests.count(("POST", "/prompt")) == 5


def test_in_flight_bound_is_respected_per_server(output_dir, root):
    with FakeComfyServer(output_dir, exec_delay=0.06) as server:
        summary, _ = run_queue([server], range(8), root, in_flight=2)
        assert summary.done == 8
        assert server.max_outstanding == 2  # reached, never exceeded
    with FakeComfyServer(output_dir, exec_delay=0.03) as server:
        summary, _ = run_queue([server], range(8, 12), root, in_flight=1)
        assert summary.done == 4 and server.max_outstanding == 1


def test_two_servers_share_the_work(fake, fake2, root):
    summary, _ = run_queue([fake, fake2], range(12), root)
    assert summary.done == 12 and summary.exit_code == 0
    first, second = fake.received_indices(), fake2.received_indices()
    assert first and second
    assert sorted(first + second) == list(range(12))  # each job submitted once
    assert fake.max_outstanding <= 2 and fake2.max_outstanding <= 2
    assert [s["submitted"] for s in summary.servers] == [len(first), len(second)]


def test_resume_skips_complete_ids(fake, root):
    writer = DatasetWriter(root, durable=False)
    import numpy as np
    for index in (1, 3):
        writer.write_sample(index_id(index), np.zeros((4, 4, 3)), np.ones((4, 4)))
    writer.write_sample(index_id(4), np.zeros((4, 4, 3)), np.ones((4, 4)), rejected=True)
    summary, _ = run_queue([fake], range(6), root)
    assert sorted(fake.received_indices()) == [0, 2, 5]
    assert (summary.skipped, summary.done, summary.exit_code) == (3, 3, 0)
    assert "skipped" in summary.to_text() and "already complete" in summary.to_text()
    # A second run has nothing to do and contacts no server.
    before = len(fake.requests)
    summary, _ = run_queue([fake], range(6), root)
    assert summary.skipped == 6 and summary.exit_code == 0 and len(fake.requests) == before


def test_execution_error_is_retried_then_counted_failed(fake, fake2, root):
    for server in (fake, fake2):
        server.fail_times[2] = 10**6  # always fails
        server.fail_times[4] = 1      # fails once on each server, then succeeds
    summary, log = run_queue([fake, fake2], range(6), root, retries=2)
    received = fake.received_indices() + fake2.received_indices()
    assert received.count(2) == 3      # 1 + --retries attempts
    assert received.count(4) == 3      # failed on one server, then the other, then done
    assert summary.failed == 1 and summary.done == 5 and summary.exit_code == 1
    assert summary.failures[0][0] == index_id(2)
    assert "fake failure for sample 2" in summary.failures[0][1]
    assert "after 3 attempts" in summary.failures[0][1]
    assert summary.retries == 4        # two for sample 2, two for sample 4
    assert index_id(4) in _ids_in(root)
    assert "retrying 000002" in log


def test_failed_job_is_retried_on_another_server(fake, fake2, root):
    fake.fail_times[0] = 1
    fake2.fail_times[0] = 1
    summary, _ = run_queue([fake, fake2], [0], root, retries=1)
    # The retry avoided the server that failed it, so both servers ran it once.
    assert fake.received_indices() == [0] and fake2.received_indices() == [0]
    assert summary.failed == 1 and summary.retries == 1


def test_validation_error_is_not_retried_and_reports_the_node_message(fake, root):
    fake.validation_errors[1] = ("1", "Value not in list",
                                 "ckpt_name: 'sdxl.safetensors' not in ['other.safetensors']")
    summary, log = run_queue([fake], range(3), root, retries=3)
    assert fake.received_indices().count(1) == 1
    assert summary.failed == 1 and summary.done == 2 and summary.retries == 0
    reason = summary.failures[0][1]
    assert "Prompt outputs failed validation" in reason
    assert ("node 1 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'sdxl.safetensors' "
            "not in ['other.safetensors']") in reason
    assert "Value not in list" in summary.to_text() and "Value not in list" in log


def test_server_without_the_node_pack_is_not_used(output_dir, root, fake):
    with FakeComfyServer(output_dir, node_types=("KSampler",)) as bare:
        summary, log = run_queue([bare, fake], range(3), root)
        assert summary.done == 3
        assert bare.received == []
        assert "missing node type(s)" in log and "LDPPromptTemplate" in log
        with pytest.raises(sq.QueueSetupError, match="no server can run this graph"):
            run_queue([bare], range(3, 6), root)


def test_disconnecting_server_jobs_are_redistributed(fake, fake2, root):
    # Requests 2..6 of the first server are answered by closing the socket (object_info is 1).
    fake.disconnect_on = {2, 3, 4, 5, 6}
    summary, log = run_queue([fake, fake2], range(8), root)
    assert summary.done == 8 and summary.exit_code == 0, summary.to_text()
    assert _ids_in(root) == {index_id(i) for i in range(8)}
    assert summary.servers[0]["connection_errors"] >= 1
    assert "closed the connection" in log
    assert len(read_manifest(root)) == 8  # no duplicates even if a job ran twice


def test_server_stopped_mid_run_and_restarted(output_dir, root):
    server = FakeComfyServer(output_dir, exec_delay=0.05).start()
    try:
        def bounce():
            deadline = time.monotonic() + 10
            while len(server.executed) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.stop()
            time.sleep(0.4)
            server.start()  # same port

        thread = threading.Thread(target=bounce)
        thread.start()
        summary, log = run_queue([server], range(8), root, retries=3)
        thread.join(10)
        assert summary.done == 8 and summary.exit_code == 0, summary.to_text() + log
        assert _ids_in(root) == {index_id(i) for i in range(8)}
        assert summary.servers[0]["connection_errors"] >= 1
        assert "connection refused" in log
    finally:
        server.stop()


def test_job_timeout_moves_work_to_another_server(output_dir, root, fake2):
    with FakeComfyServer(output_dir, exec_delay=3.0) as slow:
        summary, log = run_queue([slow, fake2], range(6), root, timeout=0.3, retries=2)
        assert summary.done == 6 and summary.exit_code == 0, summary.to_text() + log
        assert summary.servers[0]["timeouts"] >= 1
        assert "timed out" in log
        # The job queued behind the hung one was taken back with POST /queue {"delete": ...}.
        assert slow.deleted
    assert _ids_in(root) == {index_id(i) for i in range(6)}


def test_rejected_and_missing_samples_after_success(fake, root):
    fake.reject_indices.add(1)
    fake.no_write_indices.add(2)
    summary, _ = run_queue([fake], range(4), root, verify_wait=0.3)
    assert (summary.done, summary.rejected, summary.failed) == (2, 1, 1)
    assert summary.failures[0][0] == index_id(2)
    assert "reported success but sample 000002 is not in" in summary.failures[0][1]
    assert summary.exit_code == 1
    assert fake.received_indices().count(2) == 1  # not retried


def test_stop_from_another_thread_gives_clean_summary_and_130(output_dir, root):
    with FakeComfyServer(output_dir, exec_delay=0.1) as server:
        stream = io.StringIO()
        runner = sq.QueueRunner(GRAPH, range(30), [server.url], dataset_root=root,
                                options=fast_options(), stream=stream)

        def stop_soon():
            deadline = time.monotonic() + 10
            while len(server.executed) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            runner.stop()

        threading.Thread(target=stop_soon).start()
        summary = runner.run()
    assert summary.interrupted and summary.exit_code == 130
    assert 2 <= summary.done < 30
    # The jobs in flight were allowed to finish: nothing is left on the server.
    assert summary.done == len(server.executed) == len(server.received)
    assert summary.unfinished == 30 - summary.done
    assert all(reason == "not started (stopped)" for _, reason in summary.unfinished_items)
    text = summary.to_text()
    assert "(interrupted)" in text and "run the same command again" in text


def test_hard_stop_reports_jobs_left_on_the_server(output_dir, root):
    with FakeComfyServer(output_dir, exec_delay=0.5) as server:
        runner = sq.QueueRunner(GRAPH, range(4), [server.url], dataset_root=root,
                                options=fast_options(grace=0.0), stream=io.StringIO())
        threading.Timer(0.2, runner.stop).start()
        summary = runner.run()
    assert summary.exit_code == 130
    left = [reason for _, reason in summary.unfinished_items if "left in flight" in reason]
    assert len(left) == 2 and all("prompt id" in reason for reason in left)


def test_summary_text_and_json(fake, fake2, root):
    fake.fail_times[1] = 1
    fake2.fail_times[1] = 1
    summary, _ = run_queue([fake, fake2], range(3), root, retries=0)
    text = summary.to_text()
    lines = text.splitlines()
    assert lines[0].startswith("ld-portrait queue: 3 sample(s) requested, wall time 0:0")
    assert any(line.split() == ["done", "2"] for line in lines)
    assert any(line.split() == ["failed", "1"] for line in lines)
    assert f"{fake.url}: " in text and f"{fake2.url}: " in text and "submitted" in text
    assert "failures (1):" in text and "1 x execution error in node 6 (KSampler)" in text
    assert "ids: 000001" in text
    data = summary.to_json()
    assert data["exit_code"] == 1 and data["failures"][0]["id"] == "000001"
    json.dumps(data)  # serialisable


# ---- command line -------------------------------------------------------------------------

def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    code = sq.main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_usage_errors(tmp_path):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    code, _, err = _cli([str(ui), "--count", "2"])
    assert code == 2 and "UI-format" in err
    api = tmp_path / "api.json"
    api.write_text(json.dumps({k: v for k, v in GRAPH.items() if k != "2"}))
    code, _, err = _cli([str(api), "--count", "2"])
    assert code == 2 and "no LDPPromptTemplate node" in err and "--allow-no-template" in err
    api.write_text(json.dumps(GRAPH))
    code, _, err = _cli([str(api)])
    assert code == 2 and "--count K" in err
    code, _, err = _cli([str(api), "--range", "1:2", "--count", "3"])
    assert code == 2 and "not both" in err
    code, _, err = _cli([str(api), "--count", "-1"])
    assert code == 2
    code, out, _ = _cli(["--help"])
    assert code == 0


def test_cli_dry_run_and_full_run(tmp_path, fake, root):
    api = tmp_path / "api.json"
    api.write_text(json.dumps(GRAPH))
    code, out, _ = _cli([str(api), "--range", "10:13", "--dataset", str(root), "--server",
                         fake.url, "--seed", "3", "--dry-run"])
    assert code == 0 and "3 job(s) to queue" in out
    assert "node 2 (LDPPromptTemplate): index 0 -> 10" in out
    assert f"node 6 (KSampler): seed 123 -> {sq.job_seed(3, 10)}" in out
    assert fake.received == []
    summary_json = tmp_path / "summary.json"
    code, out, err = _cli([str(api), "--start", "10", "--count", "3", "--dataset", str(root),
                           "--server", fake.url, "--poll", "0.02", "--seed", "3",
                           "--summary-json", str(summary_json)])
    assert code == 0, out + err
    assert "done             3" in out
    assert json.loads(summary_json.read_text())["done"] == 3
    assert all(g["2"]["inputs"]["seed"] == 3 for g in fake.received)


def test_sigint_subprocess_exits_130_with_summary(tmp_path, output_dir, root):
    api = tmp_path / "api.json"
    api.write_text(json.dumps(GRAPH))
    repo_parent = str(Path(sq.__file__).resolve().parent)
    with FakeComfyServer(output_dir, exec_delay=0.1) as server:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            [sys.executable, "-m", "comfyui_ld_portrait.cli.queue", str(api), "--count", "40",
             "--dataset", str(root), "--server", server.url, "--poll", "0.02", "--grace", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=repo_parent)
        try:
            deadline = time.monotonic() + 20
            while len(server.executed) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(server.executed) >= 2, "the subprocess did not start queueing"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        received = len(server.received)
    assert process.returncode == 130, out + err
    assert "stopping: no new jobs" in err and "Traceback" not in err
    assert "(interrupted)" in out and "unfinished" in out
    assert received < 40
    assert len(_ids_in(root)) == len(server.executed)  # in-flight jobs were waited for


def test_jobs_on_a_server_that_goes_away_are_redistributed(output_dir, root, fake2):
    gone = FakeComfyServer(output_dir, exec_delay=5.0).start()
    try:
        def kill_when_busy():
            deadline = time.monotonic() + 10
            while len(gone.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            gone.stop()  # and never comes back

        threading.Thread(target=kill_when_busy).start()
        summary, log = run_queue([gone, fake2], range(6), root, server_down_after=0.3,
                                 retries=1)
    finally:
        gone.stop()
    assert summary.done == 6 and summary.exit_code == 0, summary.to_text() + log
    assert summary.servers[0]["done"] == 0 and summary.servers[0]["failed_attempts"] == 2
    assert "server unreachable for more than 0.3 s" in log
    assert sorted(fake2.received_indices()) == list(range(6))


def test_gives_up_when_no_server_answers(output_dir, root):
    dead = FakeComfyServer(output_dir).start()
    dead.stop()  # nothing listens on its port any more
    summary, log = run_queue([dead.url], range(3), root, give_up_after=0.4)
    assert summary.failed == 3 and summary.exit_code == 1
    assert "no server answered for 0.4 s" in summary.stop_reason
    assert "connection refused" in summary.stop_reason
    assert "not reachable now" in log


def test_max_failures_stops_submitting(fake, root):
    for index in range(20):
        fake.fail_times[index] = 1
    summary, log = run_queue([fake], range(20), root, retries=0, max_failures=2, in_flight=1)
    assert summary.failed == 2 and summary.unfinished == 18 and summary.exit_code == 1
    assert not summary.interrupted and "--max-failures 2" in summary.stop_reason
    assert len(fake.received) == 2


def test_counter_feeding_the_sample_index_is_set_instead_of_the_link():
    graph = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 0}},
        "2": {"class_type": "LDPLoadRGBA", "inputs": {"path": "in", "index": ["1", 0]}},
        "3": {"class_type": "LDPSaveDataset", "inputs": {"sample_index": ["1", 0], "dataset_name": "d"}},
    }
    new_graph, changes = sq.rewrite_graph(graph, 7, base_seed=0, allow_no_template=True)
    assert new_graph["1"]["inputs"]["value"] == 7
    assert new_graph["2"]["inputs"]["index"] == ["1", 0]
    assert new_graph["3"]["inputs"]["sample_index"] == ["1", 0]
    assert graph["1"]["inputs"]["value"] == 0  # the original is untouched
    assert [(c.node_id, c.input_name) for c in changes] == [("1", "value")]


def test_shipped_refine_workflow_walks_the_folder_under_the_queue():
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "workflows" / "api" / "ld_portrait_refine_folder.json"
    graph = json.loads(path.read_text())
    new_graph, _ = sq.rewrite_graph(graph, 5, base_seed=0, allow_no_template=True)
    loaders = [n for n in new_graph.values() if n["class_type"] == "LDPLoadRGBA"]
    saves = [n for n in new_graph.values() if n["class_type"] == "LDPSaveDataset"]

    def value(source):
        if isinstance(source, list):
            return new_graph[source[0]]["inputs"]["value"]
        return source

    assert loaders and saves
    assert {value(n["inputs"]["index"]) for n in loaders} == {5}
    assert {value(n["inputs"]["sample_index"]) for n in saves} == {5}


# ---- robustness: hung jobs, worker crashes, read-only probing, retry back-off ---------------

def _run_bounded(runner, limit: float = 10.0):
    """``runner.run()`` in a thread; fail (after a hard stop) if it has not ended in ``limit`` s."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=runner.run()), daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        runner.stop(now=True)
        thread.join(10)
        pytest.fail(f"the run did not end within {limit:g} s")
    return result["summary"]


def test_a_job_that_hangs_forever_disables_its_server_and_ends_the_run(output_dir, root):
    with FakeComfyServer(output_dir, exec_delay=0.03) as server:
        server.delay_for[0] = 3600.0  # runs "forever" (until the fake stops)
        stream = io.StringIO()
        runner = sq.QueueRunner(GRAPH, range(3), [server.url], dataset_root=root,
                                options=fast_options(timeout=0.2, give_up_after=0.6, retries=1),
                                stream=stream)
        started = time.monotonic()
        summary = _run_bounded(runner)
        elapsed = time.monotonic() - started
        assert server.executed == []  # the hung job never finished; nothing else ran
        assert server.deleted  # the job queued behind it was taken back
    log = stream.getvalue()
    assert elapsed >= 0.2 + 0.6  # not before --timeout + --give-up-after
    assert summary.exit_code == 1 and not summary.interrupted, summary.to_text() + log
    assert (summary.done, summary.failed, summary.unfinished) == (0, 3, 0)
    assert "no usable server left" in summary.stop_reason
    assert "server stuck" in summary.stop_reason
    assert all("server stuck" in reason for _, reason in summary.failures)
    state = summary.servers[0]
    assert state["enabled"] is False and "server stuck: job 000000" in state["disabled_reason"]
    assert state["timeouts"] == 1
    assert "not using this server any more" in log and "giving up" in log


def test_stuck_server_is_not_counted_as_somewhere_else_to_run(fake, fake2):
    # A retry avoids the server it failed on only while another server could take it; a
    # server stuck on a timed-out job takes nothing, so the retry must not wait for it.
    runner = sq.QueueRunner(GRAPH, range(1), [fake.url, fake2.url], options=fast_options(),
                            stream=io.StringIO())
    stuck, other = runner.servers
    job = sq._Job(0, index_id(0), avoid=other.url)
    runner._pending.append(job)
    stuck.stuck["prompt-1"] = (time.monotonic(), index_id(5))
    assert runner._take_job(other) is job
    runner._pending.append(job)
    stuck.stuck.clear()  # once it is free again, the retry prefers it
    assert runner._take_job(other) is None and runner._take_job(stuck) is job


def test_an_unexpected_error_in_a_worker_does_not_lose_the_job(fake, root):
    stream = io.StringIO()
    runner = sq.QueueRunner(GRAPH, range(4), [fake.url], dataset_root=root,
                            options=fast_options(), stream=stream)
    real_submit = runner._submit
    calls = []

    def submit_failing_once(server, job):
        calls.append(job.sample_id)
        if len(calls) == 1:
            raise RuntimeError("injected failure")
        return real_submit(server, job)

    runner._submit = submit_failing_once
    summary = _run_bounded(runner)
    log = stream.getvalue()
    assert summary.done == 4 and summary.exit_code == 0, summary.to_text() + log
    assert calls.count(index_id(0)) == 2  # taken, lost to the crash, put back, submitted
    assert sorted(fake.received_indices()) == [0, 1, 2, 3]
    assert "unexpected error in the queue worker: RuntimeError: injected failure" in log


def test_a_crash_after_a_job_left_the_in_flight_list_does_not_lose_it(fake, root):
    stream = io.StringIO()
    runner = sq.QueueRunner(GRAPH, range(3), [fake.url], dataset_root=root,
                            options=fast_options(), stream=stream)
    real_succeeded = runner._succeeded
    crashed = []

    def succeeded_failing_once(job, server):
        if not crashed:
            crashed.append(job.sample_id)
            raise KeyError("injected")
        return real_succeeded(job, server)

    runner._succeeded = succeeded_failing_once
    summary = _run_bounded(runner)
    assert summary.done == 3 and summary.exit_code == 0, summary.to_text() + stream.getvalue()
    # The job finished on the server; put back, it was found complete and not submitted again.
    assert fake.received_indices().count(int(crashed[0])) == 1


def test_a_job_that_always_crashes_the_worker_fails_after_the_retries(fake, root):
    stream = io.StringIO()
    runner = sq.QueueRunner(GRAPH, range(3), [fake.url], dataset_root=root,
                            options=fast_options(retries=1), stream=stream)
    real_submit = runner._submit

    def submit(server, job):
        if job.index == 1:
            raise ValueError("always broken")
        return real_submit(server, job)

    runner._submit = submit
    summary = _run_bounded(runner)
    assert (summary.done, summary.failed) == (2, 1) and summary.exit_code == 1
    assert summary.failures[0][0] == index_id(1)
    assert "internal error" in summary.failures[0][1] and "always broken" in summary.failures[0][1]


def test_run_ends_when_every_worker_thread_has_stopped(fake, root):
    stream = io.StringIO()
    runner = sq.QueueRunner(GRAPH, range(3), [fake.url], dataset_root=root,
                            options=fast_options(), stream=stream)
    runner._serve = lambda server: None  # a worker that dies at once (e.g. BaseException)
    summary = _run_bounded(runner)
    assert summary.failed == 3 and summary.exit_code == 1 and not summary.interrupted
    assert "every server worker thread has stopped" in summary.stop_reason
    assert "gave up" in summary.stop_reason


def test_history_entry_with_null_exception_message():
    ok, reason = sq.parse_history_entry({"status": {"status_str": "error", "messages": [
        ["execution_error", {"node_id": "6", "node_type": "KSampler",
                             "exception_type": "RuntimeError", "exception_message": None}]]}})
    assert not ok and reason == "execution error in node 6 (KSampler): RuntimeError:"


def test_dry_run_creates_nothing_in_the_dataset_root(tmp_path, root, fake):
    import numpy as np

    from comfyui_ld_portrait.dataset import LOCK_NAME
    writer = DatasetWriter(root, durable=False)
    writer.write_sample(index_id(11), np.zeros((4, 4, 3)), np.ones((4, 4)))
    writer.write_sample(index_id(12), np.zeros((4, 4, 3)), np.ones((4, 4)), rejected=True)
    (root / LOCK_NAME).unlink()  # e.g. a dataset copied from another machine
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    api = tmp_path / "api.json"
    api.write_text(json.dumps(GRAPH))
    code, out, err = _cli([str(api), "--range", "10:14", "--dataset", str(root), "--server",
                           fake.url, "--dry-run"])
    assert code == 0, out + err
    assert "2 job(s) to queue, 2 already complete" in out
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert fake.requests == []
    probe = sq._DatasetProbe(root)
    assert (probe.status(index_id(11)), probe.status(index_id(12)), probe.status("000010")) == \
        ("accepted", "rejected", None)
    assert sq._DatasetProbe(tmp_path / "missing").status("000001") is None
    assert not (tmp_path / "missing").exists()
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_a_retry_waits_for_the_backoff_while_other_jobs_go_on(fake, root):
    fake.fail_times[0] = 1
    submissions = []
    real_post = fake._post_prompt

    def recording_post(body):
        submissions.append((time.monotonic(), fake_module.sample_index_of(body["prompt"])))
        return real_post(body)

    fake._post_prompt = recording_post
    summary, log = run_queue([fake], range(4), root, in_flight=1, retries=1, backoff=0.4,
                             backoff_max=0.4)
    assert summary.done == 4 and summary.retries == 1, summary.to_text() + log
    times = [t for t, index in submissions if index == 0]
    assert len(times) == 2 and times[1] - times[0] >= 0.4
    order = [index for _, index in submissions]
    assert order[:2] == [0, 1]  # the next job went on during the back-off
    assert "retrying 000000 in 0.4 s" in log


def test_warn_once_is_atomic_across_threads(fake):
    stream = io.StringIO()
    runner = sq.QueueRunner(GRAPH, range(1), [fake.url], options=fast_options(), stream=stream)
    barrier = threading.Barrier(16)
    results = []

    def warn():
        barrier.wait()
        results.append(runner._warn_once("same key", "warning: said once"))

    threads = [threading.Thread(target=warn) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results.count(True) == 1 and len(results) == 16
    assert stream.getvalue().count("warning: said once") == 1
