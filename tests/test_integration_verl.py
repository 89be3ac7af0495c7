"""The max@K estimators registered in the real verl (0.9.x): called through verl's own registry and
``compute_advantage`` with a real ``DataProto``, compared with ``maxpo.advantages``; the
``VERL_USE_EXTERNAL_MODULES`` import path in a fresh process; and (slow) a Ray actor, where verl's
trainer computes advantages."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip("verl")

from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402

import maxpo  # noqa: E402
from maxpo.integrations import PER_SAMPLE_RULE  # noqa: E402
from maxpo.integrations import verl as mverl  # noqa: E402

from conftest import REPO  # noqa: E402

SIZES = (5, 8, 3, 6, 8)  # groups of different sizes, as verl may pass them


def _batch(seed: int = 0, binary: bool = False, response_length: int = 7):
    """A DataProto like the one verl's trainer builds: uid per row (shuffled), outcome reward on the
    last response token, right-padded response mask."""
    rng = np.random.default_rng(seed)
    uids = np.array([f"uid-{g}" for g, s in enumerate(SIZES) for _ in range(s)], dtype=object)
    uids = uids[rng.permutation(len(uids))]
    n = len(uids)
    lengths = torch.tensor(rng.integers(1, response_length + 1, n))
    mask = (torch.arange(response_length)[None, :] < lengths[:, None]).float()
    scores = torch.tensor((rng.random(n) < 0.4) if binary else rng.random(n), dtype=torch.float32)
    rewards = torch.zeros(n, response_length)
    rewards[torch.arange(n), lengths - 1] = scores
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": uids})
    return data, scores, uids, mask


def _algorithm_config(estimator: str, **maxk):
    cfg = OmegaConf.create({"adv_estimator": estimator, "gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": True,
                            "maxk": maxk})
    OmegaConf.set_struct(cfg, True)  # as under Hydra
    return cfg


def _expected(scores, uids, k, method, scale="per_sample"):
    out = torch.zeros(len(uids), dtype=torch.float64)
    for label in set(uids.tolist()):
        rows = np.nonzero(uids == label)[0]
        factor = len(rows) / k if scale == "per_sample" and PER_SAMPLE_RULE[method] == "B/K" else 1.0
        if scale not in ("per_sample", "sum"):
            factor = float(scale)
        out[rows] = maxpo.advantages(scores[rows].double(), k, method) * factor
    return out


def test_every_method_is_registered():
    assert set(mverl.ESTIMATORS) == {"maxpo", *(f"maxk_{m}" for m in maxpo.METHODS)}
    for name, method in mverl.ESTIMATORS.items():
        assert core_algos.get_adv_estimator_fn(name) is mverl.make_estimator(method)
    assert mverl.register() == list(mverl.ESTIMATORS)  # idempotent


@pytest.mark.parametrize("scale", ["per_sample", "sum", 0.25])
def test_through_verls_compute_advantage(scale):
    try:
        from verl.trainer.ppo.ray_trainer import compute_advantage
    except ModuleNotFoundError as exc:  # verl 0.9.1 does not declare its 'verl-core' needs
        pytest.skip(f"verl.trainer.ppo.ray_trainer does not import here ({exc}); it needs verl's 'verl-core' "
                    "dependencies cachetools, fastapi, uvicorn")
    data, scores, uids, mask = _batch()
    out = compute_advantage(data, adv_estimator="maxpo", num_repeat=8, config=_algorithm_config("maxpo", k=2,
                                                                                                  scale=scale))
    adv, ret = out.batch["advantages"], out.batch["returns"]
    assert adv.shape == mask.shape and adv.dtype == torch.float32
    torch.testing.assert_close(adv, ret)
    assert torch.all(adv[mask == 0] == 0)
    expected = _expected(scores, uids, 2, "maxpo", scale)
    torch.testing.assert_close(adv.double(), expected[:, None] * mask.double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", list(maxpo.METHODS))
def test_each_method_called_the_way_verl_calls_it(method):
    data, scores, uids, mask = _batch(1, binary=True)
    k = {"tang_loo": 3, "grpo_passk": 3, "pkpo_loo1": 3}.get(method, 2)  # k == B methods: only the group of 3 is usable
    fn = core_algos.get_adv_estimator_fn(f"maxk_{method}")
    kwargs = dict(token_level_rewards=data.batch["token_level_rewards"], response_mask=data.batch["response_mask"],
                  config=_algorithm_config(f"maxk_{method}", k=k, scale="sum"), index=data.non_tensor_batch["uid"],
                  reward_baselines=torch.zeros(len(uids)))
    if method in ("tang_loo", "grpo_passk"):
        with pytest.warns(RuntimeWarning, match="4 of 5 groups are too small"):
            adv, _ = fn(**kwargs)
        usable = uids == "uid-2"
        torch.testing.assert_close(adv[~usable], torch.zeros_like(adv[~usable]))
        rows = np.nonzero(usable)[0]
        expected = maxpo.advantages(scores[rows].double(), 3, method)
        torch.testing.assert_close(adv[rows].double(), expected[:, None] * mask[rows].double(), rtol=0, atol=1e-6)
        return
    adv, _ = fn(**kwargs)
    expected = _expected(scores, uids, k, method, "sum")
    torch.testing.assert_close(adv.double(), expected[:, None] * mask.double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("maxk, match", [
    (None, r"no 'maxk' section.*\+algorithm.maxk.k=4"),
    ({}, r"algorithm.maxk.k is missing"),
    ({"k": 2, "K": 3}, r"unknown key\(s\) in algorithm.maxk: K"),
    ({"k": 0}, r"k must be >= 1"),
    ({"k": 2, "scale": "batch"}, r"scale must be one of"),
    ({"k": 2, "undersized": "drop"}, r"undersized must be"),
    ({"k": 8}, r"group 'uid-\d' \(\d valid samples\) cannot use method 'maxpo' at k = 8"),
])
def test_configuration_errors_are_clear(maxk, match):
    data, *_ = _batch()
    cfg = OmegaConf.create({"adv_estimator": "maxpo"} if maxk is None else {"adv_estimator": "maxpo", "maxk": maxk})
    OmegaConf.set_struct(cfg, True)
    with pytest.raises(ValueError, match=match):
        core_algos.get_adv_estimator_fn("maxpo")(
            token_level_rewards=data.batch["token_level_rewards"], response_mask=data.batch["response_mask"],
            config=cfg, index=data.non_tensor_batch["uid"])


def test_missing_uid_index_is_refused():
    data, *_ = _batch()
    with pytest.raises(ValueError, match="needs the 'uid' index"):
        core_algos.get_adv_estimator_fn("maxpo")(token_level_rewards=data.batch["token_level_rewards"],
                                                 response_mask=data.batch["response_mask"],
                                                 config=_algorithm_config("maxpo", k=2))


def test_version_check_refuses_other_verl(monkeypatch):
    import verl

    monkeypatch.setattr(verl, "__version__", "0.10.0")
    with pytest.raises(RuntimeError, match=r"supports verl >=0.9,<0.10 .* found verl 0.10.0"):
        mverl.register()


def test_external_modules_env_var_registers_in_a_fresh_process():
    code = textwrap.dedent("""
        import sys
        import verl  # imports every module of VERL_USE_EXTERNAL_MODULES
        assert "maxpo.integrations.verl" in sys.modules
        from verl.trainer.ppo.core_algos import get_adv_estimator_fn
        print(get_adv_estimator_fn("maxpo").__name__, get_adv_estimator_fn("maxk_pkpo_loo1").__name__)
    """)
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "maxpo.integrations.verl"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["maxk_maxpo_advantage", "maxk_pkpo_loo1_advantage"]


@pytest.mark.slow
def test_registration_reaches_a_ray_actor_only_through_the_env_var():
    """verl runs its trainer (and compute_advantage) in a Ray actor. Registering in the launching
    process does not reach it; VERL_USE_EXTERNAL_MODULES in the actor's environment does."""
    pytest.importorskip("ray")
    code = textwrap.dedent("""
        import json, ray, numpy as np, torch
        import maxpo.integrations.verl  # registers here, in the driver only
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)

        @ray.remote(num_cpus=0)
        class Trainerish:
            def registered(self):
                from verl.trainer.ppo import core_algos
                return sorted(n for n in core_algos.ADV_ESTIMATOR_REGISTRY if n == "maxpo" or n.startswith("maxk_"))

            def advantages(self):
                from omegaconf import OmegaConf
                from verl import DataProto
                from verl.trainer.ppo import core_algos
                uids = np.array(["a"] * 4 + ["b"] * 4, dtype=object)
                scores = torch.tensor([1., 0., 0., 1., 0., 0., 0., 1.])
                data = DataProto.from_dict(tensors={"token_level_rewards": scores[:, None],
                                                    "response_mask": torch.ones(8, 1)}, non_tensors={"uid": uids})
                fn = core_algos.get_adv_estimator_fn("maxpo")
                adv, _ = fn(token_level_rewards=data.batch["token_level_rewards"],
                            response_mask=data.batch["response_mask"],
                            config=OmegaConf.create({"maxk": {"k": 2}}), index=data.non_tensor_batch["uid"])
                return adv[:, 0].tolist()

        env = {"env_vars": {"VERL_USE_EXTERNAL_MODULES": "maxpo.integrations.verl"}}
        with_var = Trainerish.options(runtime_env=env).remote()
        without = Trainerish.remote()
        print("WITH", len(ray.get(with_var.registered.remote())))
        print("WITHOUT", len(ray.get(without.registered.remote())))
        print("ADV", json.dumps(ray.get(with_var.advantages.remote())))
        ray.shutdown()
    """)
    env = {k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_MODULES"}
    env["RAY_AUTH_MODE"] = "disabled"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.split(" ", 1)[0] in
                 ("WITH", "WITHOUT", "ADV"))
    assert lines["WITH"] == str(len(mverl.ESTIMATORS)) and lines["WITHOUT"] == "0"
    adv = torch.tensor(json.loads(lines["ADV"]), dtype=torch.float64)
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    expected = (maxpo.advantages(scores.view(2, 4), 2) * 2).view(-1)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-6)


def test_launch_overrides_compose_and_validate_with_verls_own_config():
    """The book's launch recipe, composed with verl's Hydra config and checked by verl's validate_config;
    the estimator then reads K from the composed ``algorithm`` section."""
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.utils import need_critic
    from verl.utils.config import validate_config

    config_dir = os.path.join(os.path.dirname(sys.modules["verl"].__file__), "trainer", "config")
    grpo_run = ["actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.model.path=some/model",
                "trainer.n_gpus_per_node=1", "data.train_batch_size=32",
                "actor_rollout_ref.actor.ppo_mini_batch_size=32",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
                "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
                "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4"]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=mverl.launch_overrides(4, 8) + grpo_run)
    validate_config(config=cfg, use_reference_policy=False, use_critic=need_critic(cfg))
    assert not need_critic(cfg)  # no value network: the estimator is not GAE
    assert mverl.read_options(cfg.algorithm) == mverl.MaxKOptions(k=4)
    data, scores, uids, mask = _batch(3)
    with pytest.warns(RuntimeWarning, match="1 of 5 groups are too small for method 'maxpo' at k = 4"):
        adv, _ = core_algos.get_adv_estimator_fn(cfg.algorithm.adv_estimator)(
            token_level_rewards=data.batch["token_level_rewards"], response_mask=data.batch["response_mask"],
            config=cfg.algorithm, index=data.non_tensor_batch["uid"])
    for label in set(uids.tolist()):
        rows = np.nonzero(uids == label)[0]
        expected = torch.zeros(len(rows), dtype=torch.float64)  # the group of 3 is too small at k = 4
        if len(rows) > 4:
            expected = maxpo.advantages(scores[rows].double(), 4) * len(rows) / 4
        torch.testing.assert_close(adv[rows].double(), expected[:, None] * mask[rows].double(), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="rollout.n=4 is the group size B, and with k=4"):
        mverl.launch_overrides(4, 4)
