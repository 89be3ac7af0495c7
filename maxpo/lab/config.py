"""Configuration of a lab run, and the presets ``smoke``, ``cpu``, ``gpu`` and ``pretrained``.

A run is described by one :class:`LabConfig` (task, model, warm start, RL,
evaluation, run settings). It is saved as ``config.json`` in the run directory,
hashed to key the warm-start cache, and reloaded by ``--resume``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from maxpo.lab.task import TaskConfig

__all__ = [
    "ModelSpec",
    "WarmStartConfig",
    "RLConfig",
    "EvalConfig",
    "LabConfig",
    "PRESETS",
    "preset",
    "AGGREGATIONS",
    "REWARDS",
    "load_config",
]

#: Loss aggregation modes (see :mod:`maxpo.lab.loss`).
AGGREGATIONS = ("sequence", "token")
#: Reward kinds: the binary verdict (pass@K) or partial credit (max@K).
REWARDS = ("binary", "partial")


@dataclass(frozen=True)
class ModelSpec:
    """The policy: the from-scratch GPT's shape, or a local Hugging Face model directory.

    ``hf_path`` set means: load that directory (model and tokenizer) instead of
    building the GPT; the GPT fields are then ignored.
    """

    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    max_len: int = 64
    hf_path: str | None = None


@dataclass(frozen=True)
class WarmStartConfig:
    """Supervised warm start on reference solutions of training puzzles.

    Attributes:
        steps: optimizer steps (0 skips the stage: RL starts from the given model).
        batch_size: puzzles per step.
        lr: peak learning rate (AdamW, linear warm-up for 5% of the steps, cosine decay to 10%).
        seed: seed of the data stream and of the initialisation.
        stop_at_pass1: stop early once pass@1 on fresh *training* puzzles (256
            puzzles x 4 answers, checked every ``check_every`` steps) reaches this
            value; ``None`` runs all ``steps``. It keeps the warm start weak by
            design on hardware where its speed of learning was never measured.
        check_every: steps between those checks.
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    stop_at_pass1: float | None = None
    check_every: int = 100


@dataclass(frozen=True)
class RLConfig:
    """The group-based RL stage.

    Attributes:
        method: advantage estimator, a key of :data:`maxpo.METHODS`.
        k: the K of pass@K / max@K that the estimator targets.
        reward: ``"binary"`` (pass@K) or ``"partial"`` (partial credit, max@K).
        prompts_per_step: G, prompts per step (all processes together).
        samples_per_prompt: B, answers sampled per prompt (the group).
        steps: RL steps.
        lr: Adam learning rate (constant).
        updates_per_batch: optimizer steps on each sampled batch (PPO epochs);
            1 is plain on-policy policy gradient.
        clip_eps: PPO ratio clipping (it only acts when ``updates_per_batch > 1``);
            0 disables clipping.
        kl_coef: weight of the KL penalty to the warm-start model (0: none, and no
            reference model is kept).
        aggregation: ``"sequence"`` or ``"token"`` (see :mod:`maxpo.lab.loss`).
        max_grad_norm: gradient clipping of the global norm (0: none). The
            from-scratch presets run without it: in the earlier CPU comparison the
            gradient norm exceeded 1.0 at every step (medians: GRPO 136, MaxPO 27,
            loo-1 25), so clipping turned every update into a normalised gradient;
            Adam already bounds the step size. Every step logs the norm before
            clipping and whether clipping acted.
        max_new_tokens: longest answer sampled.
        micro_batch: answers per forward/backward pass of the update (gradients
            are accumulated; 0: all of this process's answers at once). Bounds the
            memory of the ``(answers, tokens, vocabulary)`` logits.
    """

    method: str = "maxpo"
    k: int = 4
    reward: str = "binary"
    prompts_per_step: int = 64
    samples_per_prompt: int = 16
    steps: int = 300
    lr: float = 1e-4
    updates_per_batch: int = 1
    clip_eps: float = 0.2
    kl_coef: float = 0.0
    aggregation: str = "sequence"
    max_grad_norm: float = 1.0
    max_new_tokens: int = 16
    micro_batch: int = 0


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation.

    Attributes:
        prompts, samples, every, ks: ``prompts`` puzzles x ``samples`` answers every
            ``every`` steps (and at steps 0 and the last), pass@k / max@k for ``ks``.
        seed: fixes the held-out puzzles and the sampling of the evaluations.
        curve_prompts, curve_samples: the pass@k-versus-k curve, measured at step 0
            and at the last step on the first ``curve_prompts`` held-out puzzles with
            ``curve_samples`` answers each (k = 1, 2, 4, ... up to ``curve_samples``);
            0 disables it.
        gradvar_prompts, gradvar_repeats: the gradient-variance measurement of a
            comparison (:mod:`maxpo.lab.gradvar`): ``gradvar_repeats`` independent
            groups of answers to the same ``gradvar_prompts`` training puzzles; 0
            repeats disables it.
    """

    prompts: int = 256
    samples: int = 16
    every: int = 25
    ks: tuple[int, ...] = (1, 2, 4, 8, 16)
    seed: int = 12345
    curve_prompts: int = 0
    curve_samples: int = 0
    gradvar_prompts: int = 16
    gradvar_repeats: int = 0


@dataclass(frozen=True)
class LabConfig:
    """Everything that defines a lab run.

    Attributes:
        seed: the RL seed (prompt stream and sampling); the warm start has its own.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when present).
        bf16: bf16 autocast; ``None`` means on for CUDA, off for CPU.
        threads: torch CPU threads (``None``: torch's default).
        checkpoint_every: steps between checkpoints (one is always written at the end).
        preset: name of the preset this config came from (informational).
    """

    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    warmstart: WarmStartConfig = field(default_factory=WarmStartConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "auto"
    bf16: bool | None = None
    threads: int | None = None
    checkpoint_every: int = 50
    preset: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        parts = {"task": TaskConfig, "model": ModelSpec, "warmstart": WarmStartConfig, "rl": RLConfig,
                 "eval": EvalConfig}
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        kw: dict[str, Any] = {}
        for name, value in d.items():
            if name in parts:
                sub_known = {f.name for f in fields(parts[name])}
                bad = set(value) - sub_known
                if bad:
                    raise ValueError(f"unknown keys in config section {name!r}: {sorted(bad)}")
                if name == "eval" and "ks" in value:
                    value = {**value, "ks": tuple(value["ks"])}
                kw[name] = parts[name](**value)
            else:
                kw[name] = value
        return cls(**kw)

    def with_rl(self, **changes: Any) -> LabConfig:
        """A copy with some RL fields changed."""
        return replace(self, rl=replace(self.rl, **changes))

    def warmstart_key(self) -> str:
        """Hash of everything the warm-start model depends on (task, model, warm start)."""
        blob = json.dumps(
            {"task": asdict(self.task), "model": asdict(self.model), "warmstart": asdict(self.warmstart), "v": 1},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: The task, model and warm start shared by the CPU presets (so they share one cached warm start):
#: three numbers 1..9, targets 1..99; a 2-layer, 64-wide GPT (0.1M parameters); 300 supervised
#: steps leave it at a held-out pass@1 of about 0.12 (pass@8 about 0.5).
_CPU_TASK = TaskConfig(n_numbers=3, max_number=9, max_target=99)
_CPU_MODEL = ModelSpec(n_layer=2, n_head=4, d_model=64)
_CPU_WARMSTART = WarmStartConfig(steps=300, batch_size=128, lr=3e-3)


def _smoke() -> LabConfig:
    """CPU: 300 warm-start steps (cached after the first run), 80 RL steps of 8 prompts x 16 answers.

    One run takes 20 to 30 s on one thread with the warm start trained, about 10 s
    with it cached; the default comparison (3 methods x 3 seeds) took 138 s, warm
    start included, on a shared 2-core machine.
    """
    return LabConfig(
        task=_CPU_TASK,
        model=_CPU_MODEL,
        warmstart=_CPU_WARMSTART,
        rl=RLConfig(k=4, prompts_per_step=8, samples_per_prompt=16, steps=80,
                     lr=3e-4, max_new_tokens=12, max_grad_norm=0.0),
        eval=EvalConfig(prompts=128, samples=8, every=20, ks=(1, 2, 4, 8)),
        device="cpu",
        threads=1,
        checkpoint_every=40,
        preset="smoke",
    )


def _cpu() -> LabConfig:
    """The longer CPU comparison: 300 RL steps of 16 prompts x 16 answers.

    About a minute per run on a free core, with pass@k curves to k = 64 and the
    gradient-variance measurement. On a busy shared machine a run took 10 to 30
    minutes, which is why the committed comparison (``book/data/lab/cpu_compare.json``)
    is a smaller one at the smoke preset's size; its label says so.
    """
    return LabConfig(
        task=_CPU_TASK,
        model=_CPU_MODEL,
        warmstart=_CPU_WARMSTART,
        rl=RLConfig(k=4, prompts_per_step=16, samples_per_prompt=16, steps=300,
                     lr=3e-4, max_new_tokens=12, max_grad_norm=0.0),
        eval=EvalConfig(prompts=256, samples=16, every=25, ks=(1, 2, 4, 8, 16), curve_prompts=128, curve_samples=64,
                        gradvar_prompts=16, gradvar_repeats=64),
        device="cpu",
        threads=1,
        checkpoint_every=50,
        preset="cpu",
    )


def _gpu() -> LabConfig:
    """One GPU: four-number puzzles, a 4-layer, 192-wide GPT (1.8M parameters), 150 RL steps of 64 prompts x 16 answers.

    Four numbers from 1..9 with targets up to 99 give about 19k distinct puzzles,
    about 3.4k of them held out, so the 512-puzzle evaluation has room. The warm
    start stops once training pass@1 reaches 0.15 (at most 2000 steps), so it is
    weak whatever the GPU's speed of learning. Sized so that 3 methods x 2 seeds
    fit a few minutes of one GPU; not yet run on a GPU: the time estimate in
    ``benchmarks/gpu_session.sh`` is scaled from CPU measurements.
    """
    return LabConfig(
        task=TaskConfig(n_numbers=4, max_number=9, max_target=99),
        model=ModelSpec(n_layer=4, n_head=4, d_model=192),
        warmstart=WarmStartConfig(steps=2000, batch_size=256, lr=1e-3, stop_at_pass1=0.15, check_every=100),
        rl=RLConfig(k=4, prompts_per_step=64, samples_per_prompt=16, steps=150,
                     lr=3e-4, max_new_tokens=16, max_grad_norm=0.0),
        eval=EvalConfig(prompts=512, samples=16, every=50, ks=(1, 2, 4, 8, 16), curve_prompts=256, curve_samples=64,
                        gradvar_prompts=32, gradvar_repeats=32),
        device="cuda",
        checkpoint_every=50,
        preset="gpu",
    )


def _pretrained() -> LabConfig:
    """A local pretrained Hugging Face model (``--model-path DIR``, required), on one GPU.

    Settings for a model that already knows language: a short, gentle supervised
    warm start (200 steps at 1e-5) to teach the answer format, RL at 1e-6 with
    clipping at norm 1 and a KL penalty of 0.01 to the warm-start model, bf16 on
    CUDA. Log-probabilities are computed in micro-batches
    (:func:`maxpo.lab.sampling.token_logprobs`), so memory stays bounded for
    150k-token vocabularies.
    """
    return LabConfig(
        task=_CPU_TASK,
        model=ModelSpec(hf_path=None),
        warmstart=WarmStartConfig(steps=200, batch_size=32, lr=1e-5),
        rl=RLConfig(k=4, prompts_per_step=16, samples_per_prompt=8, steps=200, lr=1e-6, kl_coef=0.01,
                    max_grad_norm=1.0, max_new_tokens=16, micro_batch=16),
        eval=EvalConfig(prompts=256, samples=8, every=25, ks=(1, 2, 4, 8)),
        device="auto",
        checkpoint_every=25,
        preset="pretrained",
    )


#: Named presets (functions, so each call returns a fresh config).
PRESETS = {"smoke": _smoke, "cpu": _cpu, "gpu": _gpu, "pretrained": _pretrained}


def preset(name: str) -> LabConfig:
    """The named preset; ``ValueError`` lists the names for an unknown one."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()


def load_config(path: str | Path) -> LabConfig:
    """A :class:`LabConfig` from a ``config.json``; ``ValueError`` naming the file when it cannot be read."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return LabConfig.from_dict(data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a valid lab config ({_one_line(err)})") from None


def _one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__
