"""The max@K estimators registered in the real verl (0.9.x): called through verl's own registry and
``compute_advantage`` with a real ``DataProto``, compared with ``maxpo.advantages``; the
``VERL_USE_EXTERNAL_MODULES`` import path in a fresh process; and (slow) a Ray actor, where verl's
trainer computes advantages."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import tomllib
import torch

pytest.importorskip("verl")

from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402

import maxpo  # noqa: E402
from maxpo.integrations import PER_SAMPLE_RULE  # noqa: E402
from maxpo.integrations import verl as mverl  # noqa: E402
from maxpo.integrations.grouping import method_size_problem  # noqa: E402

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
    cfg = OmegaConf.create({"adv_estimator": estimator, "gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": False,
                            "use_kl_in_reward": False, "maxk": maxk})
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
    """Every method of the table (new ones included), at the smallest k that some group size allows;
    groups too small for the method get 0, the others exactly their maxpo.advantages."""
    data, scores, uids, mask = _batch(1, binary=True)
    k = next(k for k in (2, 3) if any(method_size_problem(method, b, k) is None for b in SIZES))
    fn = core_algos.get_adv_estimator_fn(f"maxk_{method}")
    kwargs = dict(token_level_rewards=data.batch["token_level_rewards"], response_mask=data.batch["response_mask"],
                  config=_algorithm_config(f"maxk_{method}", k=k, scale="sum"), index=data.non_tensor_batch["uid"],
                  reward_baselines=torch.zeros(len(uids)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adv, _ = fn(**kwargs)
    for label in set(uids.tolist()):
        rows = np.nonzero(uids == label)[0]
        if method_size_problem(method, len(rows), k) is None:
            expected = maxpo.advantages(scores[rows].double(), k, method)
        else:
            expected = torch.zeros(len(rows), dtype=torch.float64)
        torch.testing.assert_close(adv[rows].double(), expected[:, None] * mask[rows].double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("maxk, match", [
    (None, r"no 'maxk' section.*[^+]\+algorithm.maxk.k=4"),  # a new section takes one +, not ++
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
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "maxpo.integrations.verl", "VERL_USE_EXTERNAL_PLUGINS": "none"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["maxk_maxpo_advantage", "maxk_pkpo_loo1_advantage"]


def _pyproject_plugins() -> dict[str, str]:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)["project"]["entry-points"]["verl.plugins"]


def test_pyproject_declares_the_verl_plugin_and_it_resolves():
    group, name, value = mverl.ENTRY_POINT
    assert group == "verl.plugins" and _pyproject_plugins() == {name: value}
    assert importlib.metadata.EntryPoint(name=name, value=value, group=group).load() is mverl


_REGISTERED_IN_FRESH_VERL = textwrap.dedent("""
    import sys
    import verl  # loads the entry points of the group verl.plugins
    from verl.trainer.ppo import core_algos
    names = sorted(n for n in core_algos.ADV_ESTIMATOR_REGISTRY if n == "maxpo" or n.startswith("maxk_"))
    print(len(names), "maxpo.integrations.verl" in sys.modules)
""")


def _fresh_verl(extra_path: str | None = None, **env_vars: str) -> list[str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("VERL_USE_EXTERNAL_MODULES", "VERL_USE_EXTERNAL_PLUGINS")}
    env.update(env_vars)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", _REGISTERED_IN_FRESH_VERL], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def _plugin_metadata(folder) -> str:
    """pyproject.toml's verl.plugins entry points written as installed metadata (a dist-info folder,
    as pip writes it) in ``folder``; returns the folder to put on the path."""
    dist = folder / "maxpo_plugin_probe-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: maxpo-plugin-probe\nVersion: 0.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in _pyproject_plugins().items())
    (dist / "entry_points.txt").write_text(f"[verl.plugins]\n{lines}")
    return str(folder)


def test_pyprojects_entry_point_registers_in_a_fresh_verl_process(tmp_path):
    """With pyproject.toml's entry point installed as metadata, a fresh `import verl` imports the module
    and registers every estimator, with no environment variable."""
    assert _fresh_verl(_plugin_metadata(tmp_path)) == [str(len(mverl.ESTIMATORS)), "True"]


@pytest.mark.slow
def test_verls_plugin_switch_controls_the_entry_point(tmp_path):
    """Negative control and selection: VERL_USE_EXTERNAL_PLUGINS=none turns verl's discovery off (nothing
    registered, module not imported); naming the entry point loads it."""
    path = _plugin_metadata(tmp_path)
    assert _fresh_verl(path, VERL_USE_EXTERNAL_PLUGINS="none") == ["0", "False"]
    assert _fresh_verl(path, VERL_USE_EXTERNAL_PLUGINS="maxpo") == [str(len(mverl.ESTIMATORS)), "True"]


def test_installed_package_registers_through_its_entry_point():
    """The same with the metadata of the installed maxpo (pip install -e .): skipped where that
    metadata predates the entry point (re-run pip install -e . to refresh it)."""
    installed = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="verl.plugins")}
    if installed.get("maxpo") != mverl.__name__:
        pytest.skip("the installed maxpo metadata has no verl.plugins entry point (it predates pyproject's "
                    "[project.entry-points.\"verl.plugins\"]); run `pip install -e .` again")
    assert _fresh_verl() == [str(len(mverl.ESTIMATORS)), "True"]


@pytest.mark.slow
def test_registration_reaches_a_ray_actor_only_through_the_env_var():
    """verl runs its trainer (and compute_advantage) in a Ray actor. Registering in the launching
    process does not reach it; VERL_USE_EXTERNAL_MODULES in the actor's environment does. (verl's
    entry-point discovery is switched off here, so that only the variable is tested.)"""
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
    env["VERL_USE_EXTERNAL_PLUGINS"] = "none"  # the entry point (once installed) would register everywhere
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


def _compose(overrides):
    from hydra import compose, initialize_config_dir

    config_dir = os.path.join(os.path.dirname(sys.modules["verl"].__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


_GRPO_RUN = ["actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.model.path=some/model",
             "trainer.n_gpus_per_node=1", "data.train_batch_size=32", "data.max_response_length=1024",
             "actor_rollout_ref.actor.ppo_mini_batch_size=32",
             "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
             "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
             "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4"]


def test_launch_overrides_compose_and_validate_with_verls_own_config():
    """The book's launch recipe, composed with verl's Hydra config and checked by verl's validate_config;
    the estimator then reads K from the composed ``algorithm`` section, with no warning."""
    from verl.trainer.ppo.utils import need_critic
    from verl.utils.config import validate_config

    overrides = mverl.launch_overrides(4, 8, loss_scale_factor=1024)
    assert [o for o in overrides if o.startswith("+")] == ["+algorithm.maxk.k=4"]  # the new section only
    cfg = _compose(overrides + _GRPO_RUN)
    validate_config(config=cfg, use_reference_policy=False, use_critic=need_critic(cfg))
    assert not need_critic(cfg)  # no value network: the estimator is not GAE
    assert mverl.read_options(cfg.algorithm) == mverl.MaxKOptions(k=4)
    actor = cfg.actor_rollout_ref.actor
    assert (actor.loss_agg_mode, actor.loss_scale_factor) == ("seq-mean-token-sum-norm", 1024)
    assert cfg.algorithm.norm_adv_by_std_in_grpo is False and cfg.algorithm.use_kl_in_reward is False
    assert mverl.objective_warnings(cfg.algorithm) == []
    data, scores, uids, mask = _batch(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
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
        mverl.launch_overrides(4, 4, loss_scale_factor=1024)
    with pytest.raises(ValueError, match="loss_scale_factor must be a positive integer"):
        mverl.launch_overrides(4, 8, loss_scale_factor=None)


def test_launch_overrides_fail_on_a_renamed_key_or_an_existing_maxk_section(tmp_path):
    """verl's own configuration copied with actor.loss_scale_factor renamed (as a later verl might): the
    recipe fails to compose instead of adding a dead key. A user config that already has algorithm.maxk
    makes the recipe's '+' fail too; the optional scale composes."""
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    config_dir = os.path.join(os.path.dirname(sys.modules["verl"].__file__), "trainer", "config")
    copy = tmp_path / "config"
    shutil.copytree(config_dir, copy)
    actor = copy / "actor" / "actor.yaml"
    text = actor.read_text()
    assert "\nloss_scale_factor:" in text
    actor.write_text(text.replace("\nloss_scale_factor:", "\nloss_scale_coef:"))
    overrides = mverl.launch_overrides(4, 8, loss_scale_factor=1024)
    with initialize_config_dir(config_dir=str(copy), version_base=None):
        with pytest.raises(ConfigCompositionException, match="loss_scale_factor"):
            compose(config_name="ppo_trainer", overrides=overrides + _GRPO_RUN)
    with pytest.raises(ConfigCompositionException, match="already"):
        _compose(["+algorithm.maxk.k=2"] + overrides + _GRPO_RUN)
    cfg = _compose(mverl.launch_overrides(3, 8, loss_scale_factor=512, scale="sum") + _GRPO_RUN)
    assert mverl.read_options(cfg.algorithm) == mverl.MaxKOptions(k=3, scale="sum")
    assert cfg.actor_rollout_ref.actor.loss_scale_factor == 512


@pytest.mark.parametrize("switch, match", [
    ("use_kl_in_reward", "use_kl_in_reward=True: the token rewards include the KL penalty"),
    ("norm_adv_by_std_in_grpo", "norm_adv_by_std_in_grpo=True is ignored by the max@K estimator 'maxpo'"),
])
def test_switches_that_change_the_objective_are_warned_about(switch, match):
    data, scores, uids, mask = _batch()
    cfg = _algorithm_config("maxpo", k=2)
    cfg[switch] = True
    fn = core_algos.get_adv_estimator_fn("maxpo")
    with pytest.warns(UserWarning, match=match):
        adv, _ = fn(token_level_rewards=data.batch["token_level_rewards"], response_mask=data.batch["response_mask"],
                    config=cfg, index=data.non_tensor_batch["uid"])
    # the advantage itself is unchanged (std normalisation is not applied)
    torch.testing.assert_close(adv.double(), _expected(scores, uids, 2, "maxpo")[:, None] * mask.double(),
                               rtol=0, atol=1e-6)


def test_drop_no_signal_groups_keeps_exactly_the_groups_with_signal():
    """Binary groups of 8 at k = 4 with every count of correct answers 0..8: maxpo has no signal at c = 0
    and c > B - K = 4 (5 groups), while a zero-std filter (DAPO) finds only c = 0 and c = 8. The
    kept rows are those of groups whose exact advantages (fractions) are not all zero, in order."""
    from fractions import Fraction

    from maxpo import reference

    rng = np.random.default_rng(5)
    rows = [(f"uid-{c}", float(i < c)) for c in range(9) for i in range(8)]
    order = rng.permutation(len(rows))
    uids = np.array([rows[i][0] for i in order], dtype=object)
    scores = torch.tensor([rows[i][1] for i in order])
    rewards = torch.zeros(len(rows), 3)
    rewards[:, -1] = scores
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": torch.ones(len(rows), 3)},
                               non_tensors={"uid": uids})
    kept, dropped = mverl.drop_no_signal_groups(data, 4)
    silent = {label for label in set(uids.tolist())
              if all(a == 0 for a in reference.advantages(
                  [Fraction(float(scores[i])) for i in np.nonzero(uids == label)[0]], 4, "maxpo"))}
    assert set(dropped) == silent == {"uid-0", "uid-5", "uid-6", "uid-7", "uid-8"}
    zero_std = {label for label in set(uids.tolist()) if float(scores[uids == label].std()) == 0}
    assert zero_std == {"uid-0", "uid-8"}  # what a zero-std filter would drop
    assert list(kept.non_tensor_batch["uid"]) == [u for u in uids if u not in silent]
    torch.testing.assert_close(kept.batch["token_level_rewards"],
                               rewards[torch.tensor([u not in silent for u in uids])])
    assert mverl.no_signal_uids(scores, uids, 4) == dropped


def test_registration_failure_is_a_warning_with_the_reason(monkeypatch):
    import verl

    monkeypatch.setattr(verl, "__version__", "0.10.0")
    monkeypatch.setattr(mverl, "REGISTRATION_ERROR", None)
    with pytest.warns(RuntimeWarning, match=r"could not register .*found verl 0.10.0.*--check"):
        mverl._register_or_warn()
    assert mverl.REGISTRATION_ERROR.startswith("RuntimeError: maxpo.integrations.verl supports verl")


def _fresh(code: str | list[str], **env_vars: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("VERL_USE_EXTERNAL_MODULES", "VERL_USE_EXTERNAL_PLUGINS")}
    env.update(env_vars)
    return subprocess.run([sys.executable, *(["-c", code] if isinstance(code, str) else code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


_COUNT = ("from verl.trainer.ppo import core_algos; "
          "print(sum(n in core_algos.ADV_ESTIMATOR_REGISTRY for n in mverl.ESTIMATORS))")


def test_registration_in_either_import_order_without_loading_core_algos_early():
    """maxpo first (verl's plugin discovery off, so only the deferred hook can register), then verl first
    as a plugin (importing verl must not load core_algos); both end with every estimator registered."""
    code = ("import sys; import maxpo.integrations.verl as mverl; print('verl' in sys.modules, "
            "'verl.trainer.ppo.core_algos' in sys.modules); " + _COUNT)
    proc = _fresh(code, VERL_USE_EXTERNAL_PLUGINS="none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["False", "False", str(len(mverl.ESTIMATORS))]
    code = ("import sys, verl; print('maxpo.integrations.verl' in sys.modules, "
            "'verl.trainer.ppo.core_algos' in sys.modules); import maxpo.integrations.verl as mverl; " + _COUNT)
    proc = _fresh(code, VERL_USE_EXTERNAL_MODULES="maxpo.integrations.verl", VERL_USE_EXTERNAL_PLUGINS="none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "False", str(len(mverl.ESTIMATORS))]


def test_a_name_taken_by_another_estimator_is_warned_about_in_a_fresh_process():
    code = ("import warnings; warnings.simplefilter('default')\n"
            "from verl.trainer.ppo import core_algos\n"
            "core_algos.register_adv_est('maxpo')(lambda **kw: None)\n"
            "import maxpo.integrations.verl as mverl\n"
            "print(mverl.REGISTRATION_ERROR)")
    proc = _fresh(code, VERL_USE_EXTERNAL_PLUGINS="none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "could not register its verl advantage estimators (ValueError:" in proc.stderr
    assert proc.stdout.startswith("ValueError:") and "maxpo" in proc.stdout


def test_check_cli_prints_what_is_registered_or_one_error_line():
    cli = ["-m", "maxpo.integrations.verl", "--check"]
    ok = _fresh(cli, VERL_USE_EXTERNAL_MODULES="maxpo.integrations.verl", VERL_USE_EXTERNAL_PLUGINS="none")
    assert ok.returncode == 0, ok.stderr[-3000:]
    first = ok.stdout.splitlines()[0]
    assert first.startswith("verl 0.9.1: 14 max@K advantage estimators registered: ")
    assert first.split(": ", 2)[2].split(", ") == list(mverl.ESTIMATORS)
    assert "validation metrics maxk/pass@k, maxk/max@k: on when the config sets" in ok.stdout
    bad = _fresh(cli, VERL_USE_EXTERNAL_PLUGINS="none")
    assert bad.returncode == 2 and bad.stdout == ""
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in bad.stderr
    assert "14 of 14 max@K estimators are not registered" in errors[0]
    assert "verl did not import maxpo.integrations.verl" in errors[0]


def test_check_cli_does_not_count_a_name_another_plugin_holds(tmp_path):
    """Another plugin that overwrites verl's registry entry 'maxpo' after maxpo registered it (a plain dict
    assignment, which verl's decorator would refuse): --check must not count that name as registered, and
    names the function that holds it, in one error line, exit status 2."""
    (tmp_path / "hijack_plugin.py").write_text(
        "from verl.trainer.ppo import core_algos\n"
        "def other_advantage(*args, **kwargs):\n    raise NotImplementedError\n"
        "core_algos.ADV_ESTIMATOR_REGISTRY['maxpo'] = other_advantage\n")
    env = dict(VERL_USE_EXTERNAL_MODULES="maxpo.integrations.verl,hijack_plugin", VERL_USE_EXTERNAL_PLUGINS="none",
               PYTHONPATH=os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p))
    bad = _fresh(["-m", "maxpo.integrations.verl", "--check"], **env)
    assert bad.returncode == 2 and bad.stdout == "", (bad.stdout, bad.stderr[-3000:])
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in bad.stderr
    assert "1 of 14 max@K estimators are not registered (maxpo)" in errors[0]
    assert "maxpo -> hijack_plugin.other_advantage" in errors[0]


def test_validation_metrics_through_verls_trainer_against_enumeration():
    """verl's own RayPPOTrainer._val_metrics_update (which calls process_validation_metrics) on a
    validation set of two data sources, with the switch algorithm.maxk.val_k: the unbiased metrics
    equal exact enumeration; verl's own metrics are still there; without the switch nothing is added."""
    import types
    from fractions import Fraction

    from test_integration_evaluation import _exact
    from verl.trainer.ppo import ray_trainer

    assert mverl.VALIDATION_PATCHED  # installed when verl's trainer module was imported
    rng = np.random.default_rng(5)
    groups = {("math", f"m{i}"): [Fraction(int(rng.random() < 0.3)) for _ in range(4)] for i in range(5)}
    groups.update({("code", f"c{i}"): [Fraction(int(v), 4) for v in rng.integers(0, 5, 6)] for i in range(3)})
    rows = [(source, uid, float(r)) for (source, uid), vals in groups.items() for r in vals]
    sources = np.array([r[0] for r in rows], dtype=object)
    uids = [r[1] for r in rows]
    infos = {"reward": [r[2] for r in rows]}
    cfg = _compose(mverl.launch_overrides(2, 8, loss_scale_factor=1024) + ["+algorithm.maxk.val_k=[1,2,4]"]
                   + _GRPO_RUN)
    assert mverl.read_options(cfg.algorithm).val_k == (1, 2, 4)
    metrics = ray_trainer.RayPPOTrainer._val_metrics_update(types.SimpleNamespace(config=cfg), sources, uids,
                                                            infos, [])
    assert "val-core/math/reward/best@4/mean" in metrics  # verl's own (bootstrap) metric, unchanged
    for source in ("math", "code"):
        per_source = {uid: vals for (s, uid), vals in groups.items() if s == source}
        for k in (1, 2, 4):
            mean, se, p = _exact(per_source, k)
            assert metrics[f"val-core/{source}/maxk/max@{k}"] == pytest.approx(float(mean), abs=1e-12)
            assert metrics[f"val-aux/{source}/maxk/max@{k}/se"] == pytest.approx(se, abs=1e-12)
            assert metrics[f"val-aux/{source}/maxk/max@{k}/prompts"] == p
    assert metrics["val-core/math/maxk/pass@4"] == metrics["val-core/math/maxk/max@4"]  # 0/1 rewards
    assert not any("pass@" in key for key in metrics if "/code/" in key)  # rewards in quarters
    plain = _compose(mverl.launch_overrides(2, 8, loss_scale_factor=1024) + _GRPO_RUN)
    without = ray_trainer.RayPPOTrainer._val_metrics_update(types.SimpleNamespace(config=plain), sources, uids,
                                                            infos, [])
    assert not any("maxk" in key for key in without)
    assert set(metrics) - set(without) == {key for key in metrics if "/maxk/" in key}


def test_one_correct_of_four_verls_bootstrap_reads_low_the_unbiased_metric_does_not():
    """1 correct answer of n = 4: best@4 of verl's bootstrap is about 1 - (3/4)^4 = 0.684; pass@4 is 1."""
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    sources, uids, infos = ["s"] * 4, ["u"] * 4, {"reward": [0.0, 1.0, 0.0, 0.0]}
    best = process_validation_metrics(sources, uids, infos)["s"]["reward"]["best@4/mean"]
    assert abs(best - (1 - (3 / 4) ** 4)) < 0.05  # 1000 bootstrap draws
    assert mverl.validation_metrics(sources, uids, infos, 4)["val-core/s/maxk/pass@4"] == pytest.approx(1, abs=1e-12)
    with pytest.raises(ValueError, match="algorithm.maxk.val_k must be a positive integer"):
        mverl.read_options(_algorithm_config("maxpo", k=2, val_k=[0, 2]))
