"""Shared pieces of the ``ld-portrait queue`` tests: a typical API graph, short timings, and
ways to run the queue that can never hang a test."""
from __future__ import annotations

import io
import threading

import pytest

from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.dataset import DatasetWriter

DATASET = "ldp_test"

#: An SDXL-like API graph: template -> text encoders -> KSampler (literal seed) ->
#: KSamplerAdvanced (seed linked to the template) -> decode -> save.
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

#: Every run in the tests ends well within this (seconds); a run still going is a hang.
RUN_LIMIT_S = 60.0


def fast_options(**overrides) -> sq.QueueOptions:
    """Short poll, back-off and grace times so that a run takes a fraction of a second.

    The limits that end a run early (give-up, server down, request deadline) stay generous
    so that a loaded machine does not trip them; tests that exercise them pass their own.
    """
    values = dict(poll_interval=0.02, http_timeout=5.0, backoff=0.05, backoff_max=0.2,
                  grace=10.0, verify_wait=5.0, server_down_after=5.0, give_up_after=20.0,
                  status_every=0)
    values.update(overrides)
    return sq.QueueOptions(**values)


def run_bounded(runner, limit: float = RUN_LIMIT_S):
    """``runner.run()`` in a thread; fail (after a hard stop) if it has not ended in ``limit`` s.
    An exception of the run is raised here."""
    result = {}

    def run():
        try:
            result["summary"] = runner.run()
        except BaseException as error:  # handed to the test's thread
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        runner.stop(now=True)
        thread.join(10)
        pytest.fail(f"the run did not end within {limit:g} s")
    if "error" in result:
        raise result["error"]
    return result["summary"]


def make_runner(servers, indices, root=None, *, graph=GRAPH, **overrides):
    """A runner over ``servers`` (fakes or URLs) logging into a StringIO (``runner.stream``)."""
    stream = io.StringIO()
    runner = sq.QueueRunner(graph, indices, [s.url if hasattr(s, "url") else s for s in servers],
                            dataset_root=root, options=fast_options(**overrides), stream=stream)
    runner.stream = stream
    return runner


def run_queue(servers, indices, root=None, *, graph=GRAPH, limit: float = RUN_LIMIT_S,
              **overrides):
    """Run the queue to its end (bounded by ``limit``); returns ``(summary, log text)``."""
    runner = make_runner(servers, indices, root, graph=graph, **overrides)
    summary = run_bounded(runner, limit)
    return summary, runner.stream.getvalue()


def cli(argv):
    """``ld-portrait queue ARGV`` in this process: ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    code = sq.main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def ids_in(root) -> set[str]:
    return DatasetWriter(root).complete_ids()
