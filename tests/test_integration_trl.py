"""MaxKGRPOTrainer with the real TRL on CPU: a tiny random Llama and a character tokenizer built
here (nothing downloaded), a verifiable reward, a few optimizer steps, and a check that the
advantages TRL multiplied its log-probabilities by are ``maxpo.advantages`` of the same rewards.

The check is independent of TRL's bookkeeping: the rows the loss saw are grouped by their
decoded prompt and re-scored from their decoded completion (``maxpo.integrations.demo.recheck``).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl")

import maxpo  # noqa: E402
from maxpo.integrations import demo  # noqa: E402
from maxpo.integrations import trl as mtrl  # noqa: E402

from conftest import REPO  # noqa: E402

ATOL = 1e-6  # TRL keeps advantages in float32


def _max_gap(expected, used):
    return max(abs(a - b) for a, b in zip(expected, used, strict=True))


@pytest.mark.parametrize("k, method, scale", [(2, "maxpo", "per_sample"), (3, "pkpo_loo1", "sum")])
def test_advantages_trl_trained_on_are_maxpo(k, method, scale, tmp_path):
    run = demo.run_tiny_grpo(k, method, scale, num_generations=4, per_device_batch=4, steps_per_generation=2,
                             max_steps=4, output_dir=str(tmp_path))
    # 4 optimizer steps of 4 completions, generated twice (2 groups of 4 each time)
    assert len(run.rows) == 16 and {r.generation for r in run.rows} == {1, 2}
    expected, used = demo.recheck(run.rows, k, method, scale, group_size=4)
    assert _max_gap(expected, used) < ATOL
    rewards = torch.tensor([float(demo.answer_of(r.prompt) in r.completion) for r in run.rows])
    assert 0 < rewards.mean() < 1, "the toy reward should give mixed groups"
    assert any(abs(a) > 0.1 for a in used), "some advantages should be non-zero"
    # negative control: another estimator on the same rows does not match
    other = "pkpo_loo1" if method == "maxpo" else "maxpo"
    assert _max_gap(demo.recheck(run.rows, 2, other, scale)[0], used) > 1e-2
    # TRL's logged advantages (last generation, all processes) are ours too
    logged = torch.tensor(run.logged_rewards, dtype=torch.float64).view(-1, 4)
    factor = 4 / k if scale == "per_sample" else 1.0
    ours = (maxpo.advantages(logged, k, method) * factor).view(-1)
    torch.testing.assert_close(torch.tensor(run.logged_advantages, dtype=torch.float64), ours, rtol=0, atol=ATOL)
    assert all(len(set(run.logged_prompts[i:i + 4])) == 1 for i in range(0, len(run.logged_prompts), 4))


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from trl import GRPOConfig

    tok = demo.char_tokenizer()
    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), use_cpu=True, bf16=False, report_to="none",
                      num_generations=4, per_device_train_batch_size=4, max_completion_length=4, max_steps=1,
                      scale_rewards="none")
    return mtrl.MaxKGRPOTrainer(model=demo.tiny_llama(tok), reward_funcs=[demo.contains_answer, demo.contains_answer],
                                args=args, train_dataset=demo.addition_dataset(8), processing_class=tok, k=2)


def test_unscorable_completions_are_left_out_of_their_group(trainer):
    nan = float("nan")
    # two reward functions, weights 1 and 1; row 2: only one function scored it; row 5: none did
    rpf = torch.tensor([[1, 0], [0, 0], [nan, 1], [0, 0], [1, 1], [nan, nan], [0, 0], [1, 0]], dtype=torch.float32)
    out = trainer.maxk_advantages(rpf, 4)
    rewards = torch.tensor([1, 0, 1, 0, 2, 0, 0, 1], dtype=torch.float64)
    torch.testing.assert_close(out.advantages[:4].double(), maxpo.advantages(rewards[:4], 2) * 2)
    kept = torch.tensor([4, 6, 7])
    torch.testing.assert_close(out.advantages[kept].double(), maxpo.advantages(rewards[kept], 2) * 3 / 2)
    assert out.advantages[5] == 0 and out.group_sizes.tolist() == [4, 3]


def test_version_check_refuses_other_trl(monkeypatch):
    import trl

    monkeypatch.setattr(trl, "__version__", "1.17.0")
    with pytest.raises(RuntimeError, match=r"supports TRL >=1.16,<1.17 .* found trl 1.17.0"):
        mtrl.check_trl_version()
    monkeypatch.setattr(trl, "__version__", "1.16.3.dev0")
    assert mtrl.check_trl_version() == "1.16.3.dev0"


@pytest.mark.parametrize("config, kwargs, match", [
    (dict(scale_rewards="group"), dict(k=2), "set GRPOConfig\\(scale_rewards='none'\\)"),
    (dict(multi_objective_aggregation="normalize_then_sum"), dict(k=2), "sum_then_normalize"),
    (dict(), dict(k=4), "num_generations=4 is the group size B, and with k=4: method 'maxpo' needs k <= B - 1"),
    (dict(), dict(k=2, method="ppo"), "unknown method 'ppo'"),
    (dict(), dict(k=2, scale=0), "must be finite and > 0"),
])
def test_bad_configuration_is_refused(config, kwargs, match, tmp_path):
    from trl import GRPOConfig

    tok = demo.char_tokenizer()
    args = GRPOConfig(**{"output_dir": str(tmp_path), "use_cpu": True, "bf16": False, "report_to": "none",
                         "num_generations": 4, "per_device_train_batch_size": 4, "max_completion_length": 4,
                         "scale_rewards": "none", **config})
    with pytest.raises(ValueError, match=match):
        mtrl.MaxKGRPOTrainer(model=demo.tiny_llama(tok), reward_funcs=demo.contains_answer, args=args,
                             train_dataset=demo.addition_dataset(8), processing_class=tok, **kwargs)


@pytest.mark.slow
def test_two_processes_groups_split_across_processes(tmp_path):
    """torchrun, 2 CPU processes, 3 completions per process per step, groups of 4: some groups are
    split between the processes, and every row still gets the advantage of its whole group."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun not found"
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "maxpo.integrations.demo", "--out", str(out),
           "--k", "2", "--num-generations", "4", "--per-device-batch", "3", "--steps-per-generation", "2",
           "--max-steps", "4"]
    # own process group, so that a hang kills torchrun's workers too
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun timed out after 240 s\n{stdout[-2000:]}\n{stderr[-2000:]}")
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [d["world_size"] for d in ranks] == [2, 2]
    rows = [demo.LossRow(**row) for d in ranks for row in d["rows"]]
    assert len(rows) == 24  # 2 processes x 4 steps x 3 completions
    owners: dict[tuple[int, str], set[int]] = {}
    for d in ranks:
        for row in d["rows"]:
            owners.setdefault((row["generation"], row["prompt"]), set()).add(d["rank"])
    assert any(len(ranks_) == 2 for ranks_ in owners.values()), "expected a group split across the processes"
    expected, used = demo.recheck(rows, 2, "maxpo", group_size=4)
    assert _max_gap(expected, used) < ATOL
