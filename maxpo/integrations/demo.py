r"""A tiny, offline, CPU run of :class:`~maxpo.integrations.trl.MaxKGRPOTrainer`.

Everything is built locally (nothing is downloaded): a character-level
tokenizer, a randomly initialised one-layer Llama, a data set of distinct
prompts ``"a+b="`` and a verifiable reward, ``contains_answer``: 1 if the last
digit of ``a + b`` appears in the completion, else 0 (pass@K is max@K of this).
The run records, for every completion the loss was computed on, the prompt,
the completion and the advantage TRL multiplied its log-probabilities by, so
that :func:`recheck` can recompute the expected advantages from the text alone
(grouping by prompt, re-scoring the completion, calling :func:`maxpo.advantages`)
without trusting TRL's bookkeeping.

Used by the book's appendix and by the tests; also runnable on several CPU
processes::

    torchrun --nproc_per_node 2 -m maxpo.integrations.demo --out /tmp/run --k 2

writes one ``rank<r>.json`` per process (the rows that process trained on).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

import maxpo
from maxpo.figures.settings import torch_threads
from maxpo.integrations.grouping import Scale, check_options, group_scale_factors

__all__ = ["DIGITS", "LossRow", "TinyRun", "addition_dataset", "char_tokenizer", "contains_answer",
           "recheck", "run_tiny_grpo", "tiny_llama"]

DIGITS = "0123456789"
_CHARS = DIGITS + "+="
_SPECIALS = ("<pad>", "<s>", "</s>")


def char_tokenizer() -> Any:
    """A character-level ``PreTrainedTokenizerFast``: one token per digit, ``+`` and ``=``, plus pad/bos/eos."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*_SPECIALS, *_CHARS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def tiny_llama(tokenizer: Any, seed: int = 0, hidden: int = 16) -> Any:
    """A randomly initialised one-layer Llama (about 1.5k parameters) for ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def addition_dataset(n: int = 32, seed: int = 0) -> Any:
    """``n`` distinct prompts ``"a+b="`` (digits a, b) with ``answer`` = last digit of a + b."""
    from datasets import Dataset

    if not 1 <= n <= 100:
        raise ValueError(f"there are 100 distinct prompts a+b= with digits a, b; asked for n = {n}")
    pairs = random.Random(seed).sample([(a, b) for a in range(10) for b in range(10)], n)
    return Dataset.from_list([{"prompt": f"{a}+{b}=", "answer": str((a + b) % 10)} for a, b in pairs])


def answer_of(prompt: str) -> str:
    """The verifiable answer of a prompt ``"a+b="``: the last digit of ``a + b``."""
    a, b = prompt.rstrip("=").split("+")
    return str((int(a) + int(b)) % 10)


def contains_answer(completions: Sequence[str], answer: Sequence[str], **_: Any) -> list[float]:
    """TRL reward function: 1.0 if the answer digit occurs in the completion, else 0.0."""
    return [float(ans in text) for text, ans in zip(completions, answer, strict=True)]


@dataclass(frozen=True)
class LossRow:
    """One completion as the loss saw it: which generation, prompt, completion, advantage used."""

    generation: int
    prompt: str
    completion: str
    advantage: float


@dataclass
class TinyRun:
    """What :func:`run_tiny_grpo` returns: the rows the loss used, TRL's logged columns, and
    ``log_history`` (the trainer's logged metrics, one dict per logging step)."""

    rows: list[LossRow]
    logged_prompts: list[str]
    logged_completions: list[str]
    logged_rewards: list[float]
    logged_advantages: list[float]
    k: int
    method: str
    scale: Scale
    num_generations: int
    seconds: float
    log_history: list[dict[str, float]]


def _recording_trainer_class() -> type:
    from maxpo.integrations.trl import MaxKGRPOTrainer

    class RecordingMaxKGRPOTrainer(MaxKGRPOTrainer):
        """Records every row the loss is computed on (prompt, completion, advantage)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.loss_rows: list[LossRow] = []
            self.generations = 0

        def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
            self.generations += 1
            return super()._generate_and_score_completions(inputs)

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
            decode = self.processing_class.decode
            for p_ids, p_mask, c_ids, c_mask, adv in zip(inputs["prompt_ids"], inputs["prompt_mask"],
                                                        inputs["completion_ids"], inputs["completion_mask"],
                                                        inputs["advantages"], strict=True):
                self.loss_rows.append(LossRow(
                    generation=self.generations,
                    prompt=decode(p_ids[p_mask.bool()], skip_special_tokens=True),
                    completion=decode(c_ids[c_mask.bool()], skip_special_tokens=True),
                    advantage=float(adv)))
            return super()._compute_loss(model, inputs)

    return RecordingMaxKGRPOTrainer


def run_tiny_grpo(k: int = 2, method: str = "maxpo", scale: Scale = "per_sample", *, num_generations: int = 4,
                  per_device_batch: int = 4, steps_per_generation: int = 2, max_steps: int = 4,
                  max_completion_length: int = 6, n_prompts: int = 32, seed: int = 0,
                  output_dir: str | None = None, quiet: bool = True, threads: int | None = 1,
                  reward_funcs: Any = contains_answer, **config: Any) -> TinyRun:
    """Train the tiny model for ``max_steps`` optimizer steps with ``MaxKGRPOTrainer`` and record what it used.

    ``config`` goes to ``GRPOConfig`` on top of the defaults used here
    (``use_cpu=True``, ``bf16=False``, ``scale_rewards="none"``, ``loss_type="dr_grpo"``,
    no checkpoints, no reporting). ``quiet`` drops the trainer's printed logs.
    ``threads`` sets torch's intra-op threads for the run (restored afterwards):
    one thread is several times faster for a model this small on a busy machine.
    ``reward_funcs`` replaces the default verifiable reward :func:`contains_answer`.
    Takes about a second after a few seconds of imports.
    """
    import time

    from trl import GRPOConfig

    start = time.perf_counter()
    tokenizer = char_tokenizer()
    args = GRPOConfig(**{
        "output_dir": output_dir or tempfile.mkdtemp(prefix="maxpo-tiny-grpo-"),
        "use_cpu": True, "bf16": False, "seed": seed, "report_to": "none", "save_strategy": "no",
        "logging_steps": 1, "disable_tqdm": True, "learning_rate": 1e-2,
        "num_generations": num_generations, "per_device_train_batch_size": per_device_batch,
        "steps_per_generation": steps_per_generation, "max_steps": max_steps,
        "max_completion_length": max_completion_length,
        "scale_rewards": "none", "loss_type": "dr_grpo", **config})
    trainer = _recording_trainer_class()(
        model=tiny_llama(tokenizer, seed), reward_funcs=reward_funcs, args=args,
        train_dataset=addition_dataset(n_prompts, seed), processing_class=tokenizer,
        k=k, method=method, scale=scale)
    if quiet:
        from transformers import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    with torch_threads(threads):
        trainer.train()
    logs = trainer._logs
    first_reward = next(iter(logs["rewards"]))
    return TinyRun(
        rows=trainer.loss_rows, logged_prompts=list(logs["prompt"]), logged_completions=list(logs["completion"]),
        logged_rewards=list(logs["rewards"][first_reward]), logged_advantages=list(logs["advantages"]),
        k=k, method=method, scale=scale, num_generations=num_generations, seconds=time.perf_counter() - start,
        log_history=[dict(entry) for entry in trainer.state.log_history])


def recheck(rows: Sequence[LossRow], k: int, method: str = "maxpo", scale: Scale = "per_sample",
            group_size: int | None = None) -> tuple[list[float], list[float]]:
    """Expected vs used advantages for the rows the loss saw, from the text alone.

    Rows are grouped by (generation, prompt); each completion is re-scored with
    :func:`contains_answer`; the expected advantage is
    ``c * maxpo.advantages(group_rewards, k, method)`` with ``c`` the factor of
    ``scale`` (:func:`~maxpo.integrations.grouping.group_scale_factors`). If
    ``group_size`` is given, every group must have exactly that many rows.
    Returns ``(expected, used)`` in the order of ``rows``.
    """
    k, method, scale = check_options(k, method, scale)
    groups: dict[tuple[int, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row.generation, row.prompt), []).append(i)
    expected = [0.0] * len(rows)
    for (_, prompt), idx in groups.items():
        if group_size is not None and len(idx) != group_size:
            raise AssertionError(f"prompt {prompt!r} has {len(idx)} rows in one generation, expected {group_size}")
        answer = answer_of(prompt)
        rewards = torch.tensor([float(answer in rows[i].completion) for i in idx], dtype=torch.float64)
        factor = group_scale_factors(method, k, torch.tensor([len(idx)]), scale)[0]
        for i, a in zip(idx, (maxpo.advantages(rewards, k, method) * factor).tolist(), strict=True):
            expected[i] = a
    return expected, [row.advantage for row in rows]


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tiny offline CPU GRPO run with max@K advantages (maxpo).")
    parser.add_argument("--out", required=True, help="folder for rank<r>.json")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--method", default="maxpo", choices=list(maxpo.METHODS))
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--per-device-batch", type=int, default=3)
    parser.add_argument("--steps-per-generation", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=4)
    opts = parser.parse_args(argv)
    run = run_tiny_grpo(opts.k, opts.method, num_generations=opts.num_generations,
                        per_device_batch=opts.per_device_batch, steps_per_generation=opts.steps_per_generation,
                        max_steps=opts.max_steps)
    rank = int(os.environ.get("RANK", "0"))
    os.makedirs(opts.out, exist_ok=True)
    with open(os.path.join(opts.out, f"rank{rank}.json"), "w") as fh:
        json.dump({"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1")),
                   "rows": [asdict(r) for r in run.rows], "logged_prompts": run.logged_prompts,
                   "logged_advantages": run.logged_advantages, "k": run.k, "method": run.method}, fh)


if __name__ == "__main__":
    _main()
