r"""Gradient-estimator study on softmax bandits: bias, variance, cosine and SNR of every method.

For each bandit of :mod:`maxpo.experiments.bandits`, each ``(B, K)`` and each method of
:data:`maxpo.METHODS` that applies, the study draws ``draws`` independent groups
of ``B`` samples (the *same* draws for every method: common random numbers),
computes the advantages with one :func:`maxpo.advantages` call, and the
per-group gradient estimates :math:`\hat g = \sum_i A_i (e_{a_i} - \pi)`. It
compares them with the exact gradient :math:`\nabla J_K` of
:meth:`maxpo.experiments.bandits.Bandit.gradient`.

Scales. Each method's :math:`\hat g` is divided by its *nominal scale* (the
constant its docstring says its expectation carries): ``canonical`` by
``B/K``, ``rloo`` by ``B`` and ``dr_grpo`` by ``B-1`` (these two then estimate
the mean-reward gradient :math:`\nabla J_1`, not :math:`\nabla J_K`). ``grpo``
and ``chen_passk`` have no constant scale (they divide by a per-group standard
deviation), so only scale-free statistics are meaningful for them.

Statistics (per row; ``*_se`` is a grouped-jackknife standard error, see
:mod:`maxpo.experiments.stats`):

* ``var``: total variance :math:`\mathrm{tr}\,\mathrm{Cov}(\hat g)`; ``rel_var`` = ``var`` /
  :math:`\|\nabla J_K\|^2`; ``var_ratio``: ``var`` / ``var`` of ``maxpo`` on the same draws.
* ``snr``: :math:`(\|\bar g\|^2 - \mathrm{var}/N) / \mathrm{var}` (an unbiased numerator).
* ``cosine``: mean over draws of :math:`\cos(\hat g, \nabla J_K)`; ``mean_dir_cos``:
  :math:`\cos(\bar g, \nabla J_K)`, the direction of the mean (signed).
* ``rel_bias``: :math:`\|\bar g - \nabla J_K\| / \|\nabla J_K\|`, with its noise floor
  ``bias_floor`` :math:`= \sqrt{\mathrm{var}/N} / \|\nabla J_K\|` and ``bias_p``, the p-value of
  Hotelling's test of :math:`E[\hat g] = \nabla J_K` (chi-square approximation, ``n_arms - 1``
  degrees of freedom: every :math:`\hat g` sums to zero over arms). ``own_target_p`` tests
  :math:`E[\hat g] = \nabla J_1` for the mean-reward methods. ``predicted_rel_bias`` is 0 for
  unbiased max@K methods and :math:`\|\nabla J_1 - \nabla J_K\| / \|\nabla J_K\|` for ``rloo`` and
  ``dr_grpo``. ``angle_bias``: :math:`\sin\angle(\bar g, \nabla J_K)` (scale-free).
* The unified view: ``mean_adv`` is the mean advantage, whose expectation is the offset
  ``offset`` = c of MATH.md (:math:`(K/B) J_K` for ``pkpo_s``, :math:`(K/B)(J_K - J_{K-1})` for
  ``pkpo_loo1``, :math:`-K J_K / (B(B-1))` for ``pkpo_loo``, 0 for ``maxpo``). Adding a constant
  ``delta`` to every advantage adds :math:`\delta S`, :math:`S = \sum_i (e_{a_i} - \pi)`, to
  :math:`\hat g`; ``delta_star`` is the variance-minimising constant and ``var_best`` the variance
  there; ``var_offset_removed`` is the variance after subtracting the method's own offset c.
  For ``maxpo``, ``var_with_loo1_offset`` is its variance after adding pkpo_loo1's offset.
* ``batch_mean_adv_sd``: standard deviation over draws of the group's mean advantage
  :math:`\bar A`, and ``offset_to_noise`` = :math:`|c| / \mathrm{sd}(\bar A)`. For ``pkpo_loo1``,
  :math:`\bar A = \bar d` where :math:`d_i = A^{loo1}_i - A^{maxpo}_i = (K/B)(V^{(K)}_{-i} - V^{(K-1)}_{-i})`
  is a leave-one-out estimate of loo-1's offset c: MaxPO is loo-1 with its offset estimated
  and removed inside the batch, and ``offset_to_noise`` compares the offset it removes with
  the noise it adds doing so.
* The baselines themselves: each unbiased max@K method is :math:`A_i = s_i - b_i` with a
  baseline :math:`b_i` that does not depend on sample i; ``baseline_mse`` is
  :math:`E[(b_i - (K/B) J_K)^2]`, its mean-square distance from :math:`E[s_i] = (K/B) J_K`
  (the offset squared plus the baseline's own variance).
"""
from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

import maxpo
from maxpo.experiments.bandits import Bandit, gradient_estimates, problem, score_sums
from maxpo.experiments.stats import block_sums, chi2_sf, jackknife

__all__ = ["BanditStudyConfig", "NOMINAL", "REPRO_KEYS", "alignment", "config_from_dict", "load", "loglog_slope",
           "method_offset", "quick_config", "reproduce", "rows_from_table", "rows_to_table", "run_bandit_study",
           "select"]

_F64 = torch.float64


@dataclass(frozen=True)
class Nominal:
    """What a method's expectation is: ``scale(B, K)`` times the gradient of ``target``."""

    target: str | None  # "max@K", "mean" (J_1) or None (no constant scale)
    scale: Callable[[int, int], float] | None


#: Nominal scale and target of every method of :data:`maxpo.METHODS`.
NOMINAL: dict[str, Nominal] = {
    "maxpo": Nominal("max@K", lambda b, k: 1.0),
    "maxpo_pairwise": Nominal("max@K", lambda b, k: 1.0),
    "canonical": Nominal("max@K", lambda b, k: b / k),
    "pkpo_s": Nominal("max@K", lambda b, k: 1.0),
    "pkpo_loo": Nominal("max@K", lambda b, k: 1.0),
    "pkpo_loo1": Nominal("max@K", lambda b, k: 1.0),
    "tang_loo": Nominal("max@K", lambda b, k: 1.0),
    "chen_passk": Nominal(None, None),
    "grpo_passk": Nominal(None, None),
    # unbiased for sum_{K'<=K} (1/K') grad J_K', not a constant multiple of grad J_K
    "maxrl": Nominal(None, None),
    "grpo": Nominal(None, None),
    "dr_grpo": Nominal("mean", lambda b, k: b - 1.0),
    "rloo": Nominal("mean", lambda b, k: float(b)),
}


def method_offset(method: str, b: int, k: int, j: dict[int, float]) -> float | None:
    """The unified view's constant c (MATH.md): E[A_i | y_i] = (K/B) A_K(y_i) + c.

    ``j`` maps ``m -> J_m`` (needs ``K`` and, for loo-1, ``K - 1``). ``None`` where
    the unified view does not apply (biased or mean-reward methods).
    """
    if method in ("maxpo", "maxpo_pairwise", "canonical"):
        return 0.0
    if method == "pkpo_s":
        return k / b * j[k]
    if method == "pkpo_loo":
        return -k * j[k] / (b * (b - 1))
    if method in ("pkpo_loo1", "tang_loo"):
        return k / b * (j[k] - j[k - 1])
    return None


@dataclass(frozen=True)
class BanditStudyConfig:
    """What the bandit study measures. ``settings`` and ``b_scan`` (at ``K = b_scan_k``) are merged."""

    problems: tuple[str, ...] = ("bernoulli", "light", "heavy", "jackpot")
    settings: tuple[tuple[int, int], ...] = ((4, 2), (8, 2), (8, 4), (8, 8), (16, 2), (16, 4), (16, 8),
                                            (32, 4), (32, 8), (32, 16), (64, 8), (64, 16))
    b_scan_k: int = 4
    b_scan: tuple[int, ...] = (5, 6, 8, 12, 16, 24, 32, 48, 64)
    draws: int = 10_000
    blocks: int = 50
    n_arms: int = 16
    seed: int = 0
    methods: tuple[str, ...] = tuple(maxpo.METHODS)
    #: maxpo_pairwise costs O(B^2) memory per group and equals maxpo to rounding: skip above this B
    pairwise_max_b: int = 32

    def all_settings(self) -> list[tuple[int, int]]:
        pairs = set(self.settings) | {(b, self.b_scan_k) for b in self.b_scan}
        return sorted(pairs, key=lambda bk: (bk[1], bk[0]))


def quick_config(**overrides: Any) -> BanditStudyConfig:
    """A small study (seconds): two problems, four settings, 2000 draws."""
    base: dict[str, Any] = dict(problems=("bernoulli", "heavy"), settings=((8, 2), (16, 4), (16, 8), (32, 8)),
                b_scan=(8, 16, 32), draws=2000, blocks=20)
    base.update(overrides)
    return BanditStudyConfig(**base)


def _setting_seed(seed: int, name: str, b: int, k: int) -> int:
    """A seed for one (problem, B, K): the same draws whatever else the study runs."""
    return (seed * 1_000_003 + zlib.crc32(f"{name}:{b}:{k}".encode())) % (2 ** 63)


def _applies(method: str, bandit: Bandit, b: int, k: int, cfg: BanditStudyConfig) -> bool:
    info = maxpo.METHODS[method]
    if info.binary_only and not bandit.binary:
        return False
    if method == "maxpo_pairwise" and b > cfg.pairwise_max_b:
        return False
    return info.check(b, k) is None


# --------------------------------------------------------------------------- statistics
def _var(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
    n = t["n"]
    gbar = t["g"] / n.unsqueeze(-1)
    return (t["gg"] - n * (gbar * gbar).sum(-1)) / (n - 1)


def _cov_gs(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
    n = t["n"]
    return (t["gS"] - (t["g"] * t["S"]).sum(-1) / n) / (n - 1)


def _var_s(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
    n = t["n"]
    return (t["SS"] - (t["S"] * t["S"]).sum(-1) / n) / (n - 1)


def _hotelling_p(g: torch.Tensor, target: torch.Tensor) -> float:
    """p-value of H0: E[g] = target (chi-square approximation to Hotelling's T^2)."""
    n = g.shape[0]
    x = g[:, :-1]  # every row sums to zero over arms: drop one coordinate
    d = x.mean(0) - target[:-1]
    cov = torch.cov(x.T)
    t2 = float(n * d @ torch.linalg.pinv(cov, hermitian=True) @ d)
    rank = int(torch.linalg.matrix_rank(cov, hermitian=True))
    return chi2_sf(t2, max(rank, 1))


def _measure_setting(bandit: Bandit, b: int, k: int, cfg: BanditStudyConfig) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(_setting_seed(cfg.seed, bandit.name, b, k))
    draws = cfg.draws - cfg.draws % cfg.blocks
    arms, rewards = bandit.sample(draws, b, gen)
    pi = bandit.probs
    grad_k = bandit.gradient(k)
    grad_1 = bandit.gradient(1)
    j = bandit.objectives(sorted({1, k, max(k - 1, 1)}))
    gk2 = float(grad_k @ grad_k)
    s_vec = score_sums(arms, pi)
    common = {"n": torch.ones(draws, dtype=_F64), "S": s_vec, "SS": (s_vec * s_vec).sum(-1)}
    common_b = {name: block_sums(v, cfg.blocks) for name, v in common.items()}

    # PKPO's signal s_i: every unbiased max@K method here is s_i minus a baseline b_i
    signal = maxpo.advantages(rewards, k, "pkpo_s")
    ideal = k / b * j[k]  # E[s_i] = (K/B) J_K, the baseline every such method aims at
    per_method: dict[str, dict[str, torch.Tensor]] = {}
    rows = []
    maxpo_adv = None
    for method in cfg.methods:
        if not _applies(method, bandit, b, k, cfg):
            continue
        t0 = time.perf_counter()
        adv = maxpo.advantages(rewards, k, method)
        adv_seconds = time.perf_counter() - t0
        nominal = NOMINAL[method]
        scale = nominal.scale(b, k) if nominal.scale is not None else 1.0
        adv = adv / scale
        if method == "maxpo":
            maxpo_adv = adv
        g = gradient_estimates(arms, adv, pi)
        gnorm = g.norm(dim=-1)
        cos = torch.where(gnorm > 0, (g @ grad_k) / (gnorm.clamp_min(1e-300) * math.sqrt(gk2)),
                          torch.zeros_like(gnorm))
        sums = dict(common_b)
        sums.update({name: block_sums(v, cfg.blocks) for name, v in {
            "g": g, "gg": (g * g).sum(-1), "cos": cos, "gS": (g * s_vec).sum(-1), "adv": adv.mean(-1),
            "adv2": adv.mean(-1) ** 2,
        }.items()})
        if method_offset(method, b, k, j) is not None:
            base_err = signal - adv - ideal  # b_i - (K/B) J_K
            sums["base_se"] = block_sums((base_err ** 2).mean(-1), cfg.blocks)
        per_method[method] = sums

        var, var_se = jackknife(_var, sums)
        mean_g = g.mean(0)
        offset = method_offset(method, b, k, j)
        row: dict[str, Any] = {
            "problem": bandit.name, "B": b, "K": k, "method": method,
            "target": nominal.target, "scale": scale if nominal.scale is not None else None,
            "draws": draws, "advantage_seconds": adv_seconds,
            "var": var, "var_se": var_se,
            "rel_var": var / gk2, "rel_var_se": var_se / gk2,
        }
        row["snr"], row["snr_se"] = jackknife(
            lambda t: ((t["g"] / t["n"].unsqueeze(-1)) ** 2).sum(-1) / _var(t) - 1 / t["n"], sums)
        row["cosine"], row["cosine_se"] = jackknife(lambda t: t["cos"] / t["n"], sums)
        row["mean_dir_cos"], row["mean_dir_cos_se"] = jackknife(
            lambda t: (t["g"] @ grad_k) / ((t["g"] ** 2).sum(-1).sqrt() * math.sqrt(gk2)), sums)
        row["angle_bias"], row["angle_bias_se"] = jackknife(
            lambda t: torch.sqrt((1 - ((t["g"] @ grad_k) ** 2)
                                  / ((t["g"] ** 2).sum(-1) * gk2)).clamp_min(0)), sums)
        row["mean_adv"], row["mean_adv_se"] = jackknife(lambda t: t["adv"] / t["n"], sums)
        row["offset"] = offset
        row["batch_mean_adv_sd"], _ = jackknife(
            lambda t: ((t["adv2"] - t["adv"] ** 2 / t["n"]) / (t["n"] - 1)).clamp_min(0).sqrt(), sums)
        if offset is not None and row["batch_mean_adv_sd"] > 0:
            row["offset_to_noise"] = abs(offset) / row["batch_mean_adv_sd"]
        row["delta_star"], row["delta_star_se"] = jackknife(lambda t: -_cov_gs(t) / _var_s(t), sums)
        row["var_best"], row["var_best_se"] = jackknife(lambda t: _var(t) - _cov_gs(t) ** 2 / _var_s(t), sums)
        if nominal.target is not None:
            row["rel_bias"] = float((mean_g - grad_k).norm()) / math.sqrt(gk2)
            row["bias_floor"] = math.sqrt(var / draws / gk2)
            row["bias_p"] = _hotelling_p(g, grad_k)
            if nominal.target == "mean":
                row["predicted_rel_bias"] = float((grad_1 - grad_k).norm()) / math.sqrt(gk2)
                row["own_target_p"] = _hotelling_p(g, grad_1)
            else:
                row["predicted_rel_bias"] = 0.0
        if offset is not None:
            def var_offset_removed(t: Mapping[str, torch.Tensor], c: float = offset) -> torch.Tensor:
                return _var(t) - 2 * c * _cov_gs(t) + c * c * _var_s(t)

            row["var_offset_removed"], row["var_offset_removed_se"] = jackknife(var_offset_removed, sums)
        if "base_se" in sums:
            row["baseline_mse"], row["baseline_mse_se"] = jackknife(lambda t: t["base_se"] / t["n"], sums)
        if method == "maxpo" and k >= 2:
            c1 = method_offset("pkpo_loo1", b, k, j)
            assert c1 is not None, "pkpo_loo1 always has a unified-view offset"
            row["loo1_offset"] = c1

            def var_with_loo1_offset(t: Mapping[str, torch.Tensor], c: float = c1) -> torch.Tensor:
                return _var(t) + 2 * c * _cov_gs(t) + c * c * _var_s(t)

            row["var_with_loo1_offset"], row["var_with_loo1_offset_se"] = jackknife(var_with_loo1_offset, sums)
        if method == "maxpo_pairwise" and maxpo_adv is not None:
            row["max_abs_diff_to_maxpo"] = float((adv - maxpo_adv).abs().max())
        rows.append(row)

    # paired variance ratios against maxpo (same draws, same blocks)
    if "maxpo" in per_method:
        ref = per_method["maxpo"]
        for row in rows:
            m = per_method[row["method"]]
            joint = {**{f"a_{n}": v for n, v in m.items()}, **{f"b_{n}": v for n, v in ref.items()}}

            def ratio(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
                ta = {n[2:]: v for n, v in t.items() if n.startswith("a_")}
                tb = {n[2:]: v for n, v in t.items() if n.startswith("b_")}
                return _var(ta) / _var(tb)

            row["var_ratio"], row["var_ratio_se"] = jackknife(ratio, joint)
    return rows


def run_bandit_study(cfg: BanditStudyConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the study; returns a JSON-ready dict with ``config``, ``problems``, ``rows``, ``seconds``."""
    cfg = cfg or BanditStudyConfig()
    unknown = [m for m in cfg.methods if m not in maxpo.METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(maxpo.METHODS)}")
    settings = cfg.all_settings()
    tasks = [(name, b, k) for name in cfg.problems for (b, k) in settings]
    bandits = {name: problem(name, cfg.n_arms) for name in cfg.problems}
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    bar = _progress(tasks, progress, "bandit study")
    for name, b, k in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{name} B={b} K={k}")
        t0 = time.perf_counter()
        new = _measure_setting(bandits[name], b, k, cfg)
        for row in new:
            row["setting_seconds"] = time.perf_counter() - t0
        rows.extend(new)
    seconds = time.perf_counter() - start
    ks = sorted({k for _, k in settings} | {k - 1 for _, k in settings if k > 1} | {1})
    problems = {
        name: {"description": bd.description, "binary": bd.binary, "arms": bd.summary(),
               "J": {str(k): v for k, v in bd.objectives(ks).items()},
               "grad_norm": {str(k): float(bd.gradient(k).norm()) for k in ks}}
        for name, bd in bandits.items()
    }
    return {"study": "bandit", "config": _config_dict(cfg), "problems": problems, "rows": rows,
            "seconds": seconds}


def _config_dict(cfg: BanditStudyConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["settings"] = [list(s) for s in cfg.settings]
    d["all_settings"] = [list(s) for s in cfg.all_settings()]
    return d


def _progress(items: list, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="setting")


def select(rows: Iterable[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    """Rows whose fields equal every ``where`` item (``method=("a", "b")`` matches either)."""
    out = []
    for row in rows:
        ok = True
        for key, want in where.items():
            have = row.get(key)
            if isinstance(want, (tuple, list, set, frozenset)):
                ok = have in want
            else:
                ok = have == want
            if not ok:
                break
        if ok:
            out.append(row)
    return out


def rows_to_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Column-major form of the rows (a compact JSON table): ``{"columns": [...], "data": [[...], ...]}``."""
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    return {"columns": columns, "data": [[row.get(c) for c in columns] for row in rows]}


def rows_from_table(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Inverse of :func:`rows_to_table` (missing values come back as ``None``)."""
    return [dict(zip(table["columns"], values)) for values in table["data"]]


def load(path: str) -> dict[str, Any]:
    """Read a results file of ``python -m maxpo.experiments bandit``; ``rows`` as a list of dicts."""
    from maxpo.experiments.provenance import read_json

    data = read_json(path)
    if isinstance(data.get("rows"), dict):
        data["rows"] = rows_from_table(data["rows"])
    return data


# --------------------------------------------------------------------------- analysis helpers
#: statistics compared when a committed result is re-run
REPRO_KEYS = ("var", "var_ratio", "snr", "cosine", "rel_bias", "mean_adv", "bias_p")


def config_from_dict(d: dict[str, Any]) -> BanditStudyConfig:
    """The :class:`BanditStudyConfig` recorded in a results file."""
    fields = {k: v for k, v in d.items() if k in BanditStudyConfig.__dataclass_fields__}
    for key in ("problems", "b_scan", "methods"):
        fields[key] = tuple(fields[key])
    fields["settings"] = tuple(tuple(s) for s in fields["settings"])
    return BanditStudyConfig(**fields)


def reproduce(result: dict[str, Any], settings: Sequence[tuple[str, int, int]],
              keys: Sequence[str] = REPRO_KEYS) -> float:
    """Re-run some ``(problem, B, K)`` settings of a result with its own configuration and return
    the largest relative difference of ``keys`` over all rows (each setting has its own seed, so
    a slice reproduces exactly, up to floating-point rounding)."""
    cfg = config_from_dict(result["config"])
    worst = 0.0
    for name, b, k in settings:
        fresh = _measure_setting(problem(name, cfg.n_arms), b, k, cfg)
        for row in fresh:
            old = select(result["rows"], problem=name, B=b, K=k, method=row["method"])
            if len(old) != 1:
                raise ValueError(f"no unique committed row for {name} B={b} K={k} {row['method']}")
            for key in keys:
                new_v, old_v = row.get(key), old[0].get(key)
                if new_v is None or old_v is None:
                    if (new_v is None) != (old_v is None):
                        return math.inf
                    continue
                worst = max(worst, abs(new_v - old_v) / max(abs(old_v), 1e-12))
    return worst


def alignment(row: dict[str, Any], groups: int | float) -> float:
    r"""Root-mean-square alignment of the average of ``groups`` independent groups' estimates with
    :math:`\nabla J_K`: :math:`E[\bar g_G] \cdot \nabla J_K / (\|\nabla J_K\| \sqrt{E\|\bar g_G\|^2})`.

    With :math:`E\|\bar g_G\|^2 = \|E\hat g\|^2 + \mathrm{tr\,Cov}(\hat g)/G` this is
    ``mean_dir_cos / sqrt(1 + 1 / (G * snr))``: an unbiased method tends to 1 as ``G`` grows, a
    biased one to the cosine of its mean direction.
    """
    snr = max(row["snr"], 1e-300)
    return row["mean_dir_cos"] / math.sqrt(1 + 1 / (groups * snr))


def loglog_slope(rows: Iterable[dict[str, Any]], problem_name: str, method: str, k: int,
                 b_min: int = 1, key: str = "var") -> float:
    """Least-squares slope of log(``key``) against log(B) at fixed K (``B >= b_min``)."""
    pts = [(math.log(r["B"]), math.log(r[key])) for r in select(rows, problem=problem_name, method=method, K=k)
           if r["B"] >= b_min and r.get(key)]
    if len(pts) < 2:
        raise ValueError("need at least two values of B")
    x = torch.tensor([p[0] for p in pts], dtype=_F64)
    y = torch.tensor([p[1] for p in pts], dtype=_F64)
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())
