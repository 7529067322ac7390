"""Two CPU processes (gloo) under torchrun: identical replicas, exact resume, rank 0 alone writes the run folder."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import TINY_RUN
from safetensors.torch import load_file

from t2igan.training import list_checkpoints

TINY = TINY_RUN + [
    "train.batch_size=4",  # per process: the global batch is 8
    "train.log_every=1",
    "train.sample_every=0",
    "train.checkpoint_every=2",
    "train.max_steps=4",
    "train.device=cpu",
]

# each process trains, then writes its own final weights so the test can compare the replicas
WORKER = """
import sys
import torch
from safetensors.torch import save_file
from t2igan.config import resolve_config
from t2igan.training import Trainer

torch.set_num_threads(1)
run_dir = sys.argv[1]
trainer = Trainer(resolve_config("dfgan-shapes", sys.argv[2:]), run_dir, progress=False)
init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
trainer.fit()
rank = trainer.dist.rank
save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, f"{run_dir}/rank{rank}.safetensors")
save_file({k: v.contiguous() for k, v in init.items()}, f"{run_dir}/init{rank}.safetensors")

# resume from the step-2 checkpoint (each rank takes its own RNG state) and train to step 4 again
again = Trainer(resolve_config("dfgan-shapes", sys.argv[2:]), run_dir, progress=False)
again.load_checkpoint(trainer.run_dir / "checkpoints" / "step-00000002.safetensors")
again.fit()
save_file({k: v.contiguous() for k, v in again.model.state_dict().items()}, f"{run_dir}/resumed{rank}.safetensors")
"""


@pytest.mark.slow
def test_two_gloo_processes_keep_identical_weights(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(worker), str(run), *TINY]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]

    init0, init1 = load_file(str(run / "init0.safetensors")), load_file(str(run / "init1.safetensors"))
    final0, final1 = load_file(str(run / "rank0.safetensors")), load_file(str(run / "rank1.safetensors"))
    for k in final0:
        assert torch.equal(init0[k], init1[k]), f"initial {k} differs between ranks"
        assert torch.equal(final0[k], final1[k]), f"final {k} differs between ranks"
    assert not torch.equal(init0["generator.fc.weight"], final0["generator.fc.weight"])  # it trained
    # a two-process run resumed from its step-2 checkpoint ends exactly where the uninterrupted one did
    for rank, final in ((0, final0), (1, final1)):
        resumed = load_file(str(run / f"resumed{rank}.safetensors"))
        assert all(torch.equal(resumed[k], final[k]) for k in final), f"rank {rank} resumed differently"

    # rank 0's checkpoint holds those weights and every rank's RNG state
    assert [s for s, _ in list_checkpoints(run)] == [2, 4]
    ckpt = load_file(str(run / "checkpoints" / "step-00000004.safetensors"))
    assert all(torch.equal(ckpt[f"model.{k}"], v) for k, v in final0.items())
    state = torch.load(run / "checkpoints" / "step-00000004.state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng_per_rank"]) == 2
    assert not torch.equal(state["rng_per_rank"][0]["torch"], state["rng_per_rank"][1]["torch"])
    # only rank 0 logs: one line per step (the resumed run replaced steps 3 and 4)
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
