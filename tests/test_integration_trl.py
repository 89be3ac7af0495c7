"""MaxKGRPOTrainer with the real TRL on CPU: a tiny random Llama and a character tokenizer built
here (nothing downloaded), a verifiable reward, a few optimizer steps, and a check that the
advantages TRL multiplied its log-probabilities by are ``maxpo.advantages`` of the same rewards.

The check is independent of TRL's bookkeeping: the rows the loss saw are grouped by their
decoded prompt and re-scored from their decoded completion (``maxpo.integrations.demo.recheck``).
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from fractions import Fraction
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


class FlakyVerifier:
    """A verifier that cannot score the first completion of every call (``None``, as for a timeout) and
    records what it returned, so the test knows each completion's reward without trusting TRL."""

    __name__ = "flaky_verifier"

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str, float | None]]] = []

    def __call__(self, prompts, completions, answer, **_):
        out = [None if i == 0 else float(a in c) for i, (c, a) in enumerate(zip(completions, answer, strict=True))]
        self.calls.append(list(zip(prompts, completions, out, strict=True)))
        return out


def _pass_at_k(rewards, k):
    """Exact U-statistic, brute force over k-subsets (no maxpo code)."""
    subsets = list(itertools.combinations(rewards, k))
    return float(sum(Fraction(max(s)) for s in subsets) / len(subsets))


def _metrics_of(run, key):
    return [entry[key] for entry in run.log_history if key in entry]


@pytest.mark.parametrize("k", [3, 2])
def test_unscorable_completions_of_the_only_prompt_do_not_crash(k, tmp_path):
    """One prompt per step (groups of 4), the verifier fails on one completion each time: at k = 3 the
    group (3 scored completions) is too small for maxpo and gets advantage 0; at k = 2 it is usable
    and the unscored completion alone gets 0. Training runs either way, and the logs count it."""
    verifier = FlakyVerifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run = demo.run_tiny_grpo(k, "maxpo", num_generations=4, per_device_batch=4, steps_per_generation=1,
                                 max_steps=3, output_dir=str(tmp_path), reward_funcs=verifier)
    assert len(verifier.calls) == 3 and all(len(call) == 4 for call in verifier.calls)
    assert len({p for p, _, _ in verifier.calls[0]}) == 1, "one prompt per step"
    assert _metrics_of(run, "maxk/unscored_completions") == [1.0, 1.0, 1.0]
    assert _metrics_of(run, "maxk/undersized_groups") == ([1.0] * 3 if k == 3 else [0.0] * 3)
    estimates = _metrics_of(run, f"maxk/max@{k}")
    assert estimates == pytest.approx([_pass_at_k([r for _, _, r in call if r is not None], k)
                                       for call in verifier.calls], abs=1e-9)
    for generation, call in enumerate(verifier.calls, start=1):
        used = sorted(row.advantage for row in run.rows if row.generation == generation)
        scored = torch.tensor([r for _, _, r in call if r is not None], dtype=torch.float64)
        if k == 3:
            expected = [0.0] * 4
        else:
            expected = sorted([0.0, *(maxpo.advantages(scored, 2) * 3 / 2).tolist()])
        assert used == pytest.approx(expected, abs=ATOL)
    if k == 3:
        assert _metrics_of(run, "maxk/no_signal_frac") == [1.0, 1.0, 1.0]
        assert _metrics_of(run, "maxk/mean_abs_advantage") == [0.0, 0.0, 0.0]


def test_maxk_metrics_are_logged_and_exact(tmp_path):
    """Two prompts per step, steps_per_generation = 1 (one log line per generation): the logged maxk/
    metrics equal a brute-force pass@2 estimate, the no-signal fraction and mean |A| recomputed from the
    rows the loss saw (re-scored from their text)."""
    run = demo.run_tiny_grpo(2, "maxpo", num_generations=4, per_device_batch=8, steps_per_generation=1,
                             max_steps=3, output_dir=str(tmp_path))
    expected, used = demo.recheck(run.rows, 2, "maxpo", group_size=4)
    assert _max_gap(expected, used) < ATOL
    by_generation: dict[int, dict[str, list[int]]] = {}
    for i, row in enumerate(run.rows):
        by_generation.setdefault(row.generation, {}).setdefault(row.prompt, []).append(i)
    assert sorted(by_generation) == [1, 2, 3]
    want = {"maxk/max@2": [], "maxk/no_signal_frac": [], "maxk/mean_abs_advantage": []}
    for generation in sorted(by_generation):
        groups = by_generation[generation]
        rewards = {p: [float(demo.answer_of(p) in run.rows[i].completion) for i in idx] for p, idx in groups.items()}
        want["maxk/max@2"].append(sum(_pass_at_k(r, 2) for r in rewards.values()) / len(groups))
        want["maxk/no_signal_frac"].append(
            sum(all(abs(expected[i]) < 1e-12 for i in idx) for idx in groups.values()) / len(groups))
        want["maxk/mean_abs_advantage"].append(
            sum(abs(expected[i]) for idx in groups.values() for i in idx) / sum(map(len, groups.values())))
    for key, values in want.items():
        assert _metrics_of(run, key) == pytest.approx(values, abs=1e-6), key
    assert _metrics_of(run, "maxk/undersized_groups") == [0.0, 0.0, 0.0]


def _never_load(*args, **kwargs):
    raise AssertionError("the model loader was called before the configuration was checked")


_BOGUS_MODEL = "/nonexistent/maxpo-test-model"


@pytest.mark.parametrize("config, kwargs, match", [
    (dict(scale_rewards="group"), dict(k=2), "set GRPOConfig\\(scale_rewards='none'\\)"),
    (dict(multi_objective_aggregation="normalize_then_sum"), dict(k=2), "sum_then_normalize"),
    (dict(), dict(k=4), "num_generations=4 is the group size B, and with k=4: method 'maxpo' needs k <= B - 1"),
    (dict(), dict(k=2, method="ppo"), "unknown method 'ppo'"),
    (dict(), dict(k=2, scale=0), "must be finite and > 0"),
    (dict(), dict(k=2, method="chen_passk", reward_funcs=[demo.contains_answer, demo.contains_answer]),
     "method 'chen_passk' needs 0/1 rewards, but the reward is the weighted sum of 2 reward function"),
    (dict(reward_weights=[2.0]), dict(k=2, method="chen_passk"), r"with weights \[2.0\]"),
    (None, dict(k=2), "pass args=GRPOConfig\\(scale_rewards='none'"),
])
def test_bad_configuration_is_refused_before_the_model_loads(config, kwargs, match, tmp_path, monkeypatch):
    """The model is a path that does not exist, and TRL's loader is replaced by one that fails the test:
    the configuration error must come first."""
    import trl.trainer.grpo_trainer as grpo_module
    from trl import GRPOConfig

    monkeypatch.setattr(grpo_module, "create_model_from_path", _never_load)
    args = None if config is None else GRPOConfig(**{
        "output_dir": str(tmp_path), "use_cpu": True, "bf16": False, "report_to": "none", "num_generations": 4,
        "per_device_train_batch_size": 4, "max_completion_length": 4, "scale_rewards": "none", **config})
    kwargs = {"reward_funcs": demo.contains_answer, **kwargs}
    with pytest.raises(ValueError, match=match):
        mtrl.MaxKGRPOTrainer(model=_BOGUS_MODEL, args=args, train_dataset=demo.addition_dataset(8), **kwargs)
    with pytest.raises(ValueError, match=match):  # positional arguments, as GRPOTrainer takes them
        mtrl.MaxKGRPOTrainer(_BOGUS_MODEL, kwargs.pop("reward_funcs"), args, **kwargs)


def test_evaluation_groups_may_be_smaller_than_k_plus_one(tmp_path):
    """num_generations_eval = 2 with k = 2 (maxpo needs 3): construction warns instead of refusing, and
    an evaluation runs; its advantages are 0 and its pass@2 estimate is logged."""
    from trl import GRPOConfig

    tok = demo.char_tokenizer()
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", num_generations=4,
                      num_generations_eval=2, per_device_train_batch_size=4, per_device_eval_batch_size=4,
                      max_completion_length=4, max_steps=1, scale_rewards="none", eval_strategy="steps",
                      eval_steps=1, disable_tqdm=True)
    with pytest.warns(UserWarning, match="num_generations_eval=2 is too small for method 'maxpo' at k=2"):
        trainer = mtrl.MaxKGRPOTrainer(model=demo.tiny_llama(tok), reward_funcs=demo.contains_answer, args=args,
                                       train_dataset=demo.addition_dataset(8), eval_dataset=demo.addition_dataset(4),
                                       processing_class=tok, k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no per-batch warning about the known eval size
        metrics = trainer.evaluate()
    assert "eval_maxk/max@2" in metrics and 0 <= metrics["eval_maxk/max@2"] <= 1
    assert metrics["eval_maxk/mean_abs_advantage"] == 0.0 and metrics["eval_maxk/no_signal_frac"] == 1.0
    assert metrics["eval_maxk/undersized_groups"] > 0


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


class SilentOnFirstPrompt:
    """A verifier that cannot score any completion of the first prompt of each call (``None`` for all of
    them, as for a prompt whose checker crashes); it records what it returned."""

    __name__ = "silent_on_first_prompt"

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str, float | None]]] = []

    def __call__(self, prompts, completions, answer, **_):
        out = [None if p == prompts[0] else float(a in c) for p, c, a in zip(prompts, completions, answer, strict=True)]
        self.calls.append(list(zip(prompts, completions, out, strict=True)))
        return out


def test_a_group_with_no_scored_completion_is_counted(tmp_path):
    """Two prompts per step, one of them entirely unscored: it is counted in maxk/empty_groups and as a
    group without signal in maxk/no_signal_frac (denominator: both groups); the other group's signal is
    read from the advantages TRL trained on."""
    verifier = SilentOnFirstPrompt()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run = demo.run_tiny_grpo(2, "maxpo", num_generations=4, per_device_batch=8, steps_per_generation=1,
                                 max_steps=2, output_dir=str(tmp_path), reward_funcs=verifier)
    assert len(verifier.calls) == 2 and all(len({p for p, _, _ in call}) == 2 for call in verifier.calls)
    assert _metrics_of(run, "maxk/empty_groups") == [1.0, 1.0]
    assert _metrics_of(run, "maxk/unscored_completions") == [4.0, 4.0]
    want = []
    for generation, call in enumerate(verifier.calls, start=1):
        other = {p for p, _, r in call if r is not None}
        used = [row.advantage for row in run.rows if row.generation == generation and row.prompt in other]
        assert len(used) == 4
        want.append((1 + all(abs(a) < 1e-9 for a in used)) / 2)
    assert _metrics_of(run, "maxk/no_signal_frac") == pytest.approx(want, abs=1e-12)


def test_a_prompt_log_shorter_than_the_batch_is_an_error(trainer):
    from collections import deque

    saved = trainer._logs["prompt"]
    try:
        trainer._logs["prompt"] = deque(["p"] * 4, maxlen=saved.maxlen)
        trainer._check_groups_are_prompts(4, 4)  # full: checked, passes
        trainer._logs["prompt"] = deque(["p"] * 3, maxlen=saved.maxlen)
        with pytest.raises(RuntimeError, match="prompt log holds 3 prompts where the gathered batch of 4"):
            trainer._check_groups_are_prompts(4, 4)
        trainer._logs["prompt"] = deque(["p", "p", "q", "p"], maxlen=saved.maxlen)
        with pytest.raises(RuntimeError, match="rows 0..3 of the gathered batch are not one prompt"):
            trainer._check_groups_are_prompts(4, 4)
    finally:
        trainer._logs["prompt"] = saved


class RecordingVerifier:
    """The verifiable reward, recording (prompt, reward) of every completion it scores."""

    __name__ = "recording_verifier"

    def __init__(self) -> None:
        self.scored: list[tuple[str, float]] = []

    def __call__(self, prompts, completions, answer, **_):
        out = [float(a in c) for c, a in zip(completions, answer, strict=True)]
        self.scored.extend(zip(prompts, out, strict=True))
        return out


def test_evaluation_reports_unbiased_pass_at_k_with_standard_errors(tmp_path):
    """trainer.evaluate() (TRL's evaluation and log path), num_generations_eval = 4, 4 prompts in 2
    batches, eval_k = [1, 2, 4]: eval_maxk/pass@k and max@k are the mean over prompts of the brute-force
    estimate from the recorded rewards, /se their standard error across prompts."""
    import math

    from trl import GRPOConfig

    tok = demo.char_tokenizer()
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", num_generations=4,
                      num_generations_eval=4, per_device_train_batch_size=4, per_device_eval_batch_size=8,
                      max_completion_length=4, max_steps=1, scale_rewards="none", disable_tqdm=True,
                      temperature=3.0)
    verifier = RecordingVerifier()
    trainer = mtrl.MaxKGRPOTrainer(model=demo.tiny_llama(tok), reward_funcs=verifier, args=args,
                                   train_dataset=demo.addition_dataset(8), eval_dataset=demo.addition_dataset(4),
                                   processing_class=tok, k=2, eval_k=[1, 2, 4])
    with torch.random.fork_rng():
        torch.manual_seed(3)
        metrics = trainer.evaluate()
    by_prompt: dict[str, list[float]] = {}
    for prompt, reward in verifier.scored:
        by_prompt.setdefault(prompt, []).append(reward)
    assert sorted(map(len, by_prompt.values())) == [4, 4, 4, 4]
    assert len({tuple(sorted(r)) for r in by_prompt.values()}) > 1, "degenerate: every prompt scored alike"
    for k in (1, 2, 4):
        per_prompt = [_pass_at_k(r, k) for r in by_prompt.values()]
        mean = sum(per_prompt) / 4
        se = math.sqrt(sum((x - mean) ** 2 for x in per_prompt) / 3 / 4)
        for name in ("pass", "max"):
            assert metrics[f"eval_maxk/{name}@{k}"] == pytest.approx(mean, abs=1e-9)
            assert metrics[f"eval_maxk/{name}@{k}/se"] == pytest.approx(se, abs=1e-9)
            assert metrics[f"eval_maxk/{name}@{k}/prompts"] == 4
    with pytest.raises(ValueError, match="eval_k must be a positive integer"):
        mtrl.MaxKGRPOTrainer(model=_BOGUS_MODEL, reward_funcs=verifier, args=args,
                             train_dataset=demo.addition_dataset(8), k=2, eval_k=[0])
