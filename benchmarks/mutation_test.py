r"""Mutation testing of the estimators, their input checks and the lab's loss and training step.

Plants one small, realistic bug at a time (a "mutant") in a module and runs the fast
tests that should notice it. A mutant is *killed* when a test fails (or the run
times out), *survived* otherwise. The score is killed / (mutants - equivalent), where
an equivalent mutant is one whose behaviour cannot differ from the original's; each
is listed in :data:`EQUIVALENT` with a one-line argument.

Usage (not part of ``make test``; minutes on two cores)::

    python benchmarks/mutation_test.py                  # every target
    python benchmarks/mutation_test.py estimators validate
    python benchmarks/mutation_test.py --list            # the mutants, without running
    python benchmarks/mutation_test.py lab_loss --only 'policy_loss'  # ids containing a string

Mutation operators (a small own AST mutator; why not mutmut or cosmic-ray: both start
a fresh pytest process per mutant, and importing torch alone costs seconds here, on
two cores shared by several people; this script imports torch once and forks a child
per mutant, which serves the mutated module to the tests through an import hook):

* arithmetic ``+ - * / // % ** << >> & |`` swapped for its counterpart (also in ``x op= y``);
* comparison ``< <= > >= == != in is`` moved to its neighbour or negation;
* ``and`` <-> ``or``; ``not x`` -> ``x``; ``-x`` -> ``x``; ``~x`` -> ``x``;
* an integer constant n -> n + 1 and n - 1; a float c -> 2c (0.0 -> 1.0); True <-> False;
* ``if c`` -> ``if not c`` (also ``a if c else b``);
* a statement dropped: a call used as a statement, a ``raise``, an augmented assignment,
  or a re-assignment ``x = f(x)`` (the kind of line that fixes up a value);
* a call unwrapped: ``e.to(...)``, ``e.clone()``, ``e.detach()``, ``e.clamp_min(...)``,
  ``e.clamp(...)``, ``e.double()``, ``e.float()``, ``e.contiguous()`` -> ``e``;
* ``max`` <-> ``min`` (builtins, ``torch.maximum``/``minimum``, ``.max()``/``.min()``),
  ``.all()`` <-> ``.any()``.

String constants (messages, names), docstrings and annotations are not mutated.
Lines that the target's tests never execute are reported as survived without running
(``not_covered``): no test can kill them.

The report goes to ``benchmarks/results/mutation/<target>.json`` (machine, commit,
command, date, and per mutant: location, mutation, status, the test that killed it,
or for a survivor the equivalence argument from :data:`EQUIVALENT`).
"""
from __future__ import annotations

import argparse
import ast
import copy
import glob
import hashlib
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mutation"


@dataclass(frozen=True)
class Target:
    """A module to mutate, the functions in it (None = the whole module) and the tests to run."""

    name: str
    path: str  # relative to the repository root
    module: str
    tests: tuple[str, ...]  # pytest arguments; globs are expanded, missing files dropped
    functions: tuple[str, ...] | None = None
    keyword: str | None = None  # pytest -k expression


#: the lab tests of more than a few seconds (a 60-step run, the CLI round trip, Ctrl-C) are left out
_LAB_FAST = "not test_smoke_run and not test_cli_help and not test_ctrl_c and not test_progress_works"
_ESTIMATOR_TESTS = ("tests/test_estimator_contract.py", "tests/test_estimators.py")
TARGETS = {
    t.name: t
    for t in [
        Target("estimators", "maxpo/estimators.py", "maxpo.estimators", _ESTIMATOR_TESTS),
        Target("validate", "maxpo/_validate.py", "maxpo._validate", _ESTIMATOR_TESTS),
        # the loss is tested on its own (value, logged statistics and gradient by hand, and in a training step)
        Target("lab_loss", "maxpo/lab/loss.py", "maxpo.lab.loss",
               ("tests/test_lab_loss*.py", "tests/test_lab_independent.py"),
               keyword="not warm_start"),
        Target("lab_train_step", "maxpo/lab/train.py", "maxpo.lab.train",
               ("tests/test_lab_independent.py", "tests/test_lab_train*.py"),
               functions=("_rl_step",), keyword=_LAB_FAST),
        Target("lstatistics", "maxpo/lstatistics.py", "maxpo.lstatistics", ("tests/test_lstatistics.py",)),
        Target("estimators_mixtures", "maxpo/estimators.py", "maxpo.estimators",
               ("tests/test_mixtures.py", *_ESTIMATOR_TESTS),
               functions=("_mixture_q_weights", "_mixture_maxk_weights", "_harmonic", "_linear_mixture", "_maxpo",
                          "_grpo_passk", "_maxrl", "_checker", "_size_error", "_estimate")),
        Target("lab_stats", "maxpo/lab/stats.py", "maxpo.lab.stats",
               ("tests/test_lab_stats.py", "tests/test_lab_independent.py"), keyword="bootstrap or passk"),
        Target("lab_gradvar", "maxpo/lab/gradvar.py", "maxpo.lab.gradvar",
               ("tests/test_lab_gradstudy.py", "tests/test_lab_stats.py", "tests/test_lab_independent.py"),
               keyword="gradient_variance or gradient_study or test_lab_gradstudy"),
        Target("lab_evaluate", "maxpo/lab/evaluate.py", "maxpo.lab.evaluate",
               ("tests/test_lab_independent.py",), keyword="heldout"),
        Target("grouping", "maxpo/integrations/grouping.py", "maxpo.integrations.grouping",
               ("tests/test_integration_grouping.py",)),
        Target("trl_advantages", "maxpo/integrations/trl.py", "maxpo.integrations.trl",
               ("tests/test_integration_trl_mixin.py",),  # no trainer: the trainer tests take minutes each run
               functions=("MaxKAdvantageMixin.maxk_rewards", "MaxKAdvantageMixin.maxk_advantages",
                          "MaxKAdvantageMixin.maxk_metrics", "MaxKAdvantageMixin._check_groups_are_prompts")),
        Target("zero_signal", "maxpo/theory/zero_signal.py", "maxpo.theory.zero_signal",
               ("tests/test_zero_signal.py",)),
    ]
}

@dataclass(frozen=True)
class Equivalence:
    """Survivors argued equivalent: ``id`` (a regular expression on the mutant id
    ``target::function::operator::before -> after#n``) and optionally ``context`` (one on the
    source of the mutated node's parent), with the one-line argument."""

    id: str
    argument: str
    context: str = ""


_DENSE = (r"estimators(?:_mixtures)?::(_Sorted\.unsort|_sort_groups|_q_sorted|_maxpo|_canonical|_pkpo_s|"
          r"_pkpo_loo|_pkpo_loo1|"
          r"_maxpo_pairwise|_maxpo_pairwise_block|_chen_passk|_grpo|_dr_grpo|_rloo|_by_group_size|_estimate\.rho|advantages|"
          r"_grpo_passk|_maxrl)")

#: Each entry was checked by reading the code; an entry that matches no survivor is reported as stale.
EQUIVALENT: list[Equivalence] = [
    Equivalence(_DENSE + r"::unary_drop::-1 -> 1#\d+$",
                "the per-group kernels only ever see 2-D (groups, B) tensors (advantages() flattens the batch "
                "first), so axis -1 and axis 1 are the same axis",
                context=r"(\.shape\[-1\]$)|((mean|std|sum|cumsum|gather|scatter_|squeeze|sort)\((\w+, )?-1[,)])|"
                        r"(^dim=-1$)|(^torch\.cumsum\(.*, -1\)$)"),
    Equivalence(r"estimators(?:_mixtures)?::_prepare::unary_drop::-1 -> 1#\d+$",
                "flat_mask is 2-D (groups, B): axis -1 and axis 1 are the same axis",
                context=r"^flat_mask\.sum\(-1\)$"),
    Equivalence(r"estimators(?:_mixtures)?::(RankWeights|MethodInfo)::constant::True -> False#1$",
                "frozen=False only permits assigning to the dataclass's fields, which no code does",
                context=r"^frozen=True$"),
    Equivalence(r"estimators(?:_mixtures)?::MethodInfo::constant::False -> True#[12]$",
                "changes only repr() of a MethodInfo (whether its two functions are printed)",
                context=r"^repr=False$"),
    Equivalence(r"estimators(?:_mixtures)?::_prepare::(drop_statement::t = t\.to\(_WORK\) -> pass|"
                r"unwrap_call::t\.to\(_WORK\) -> t|"
                r"negate_if::if not t\.is_floating_point\(\)|unary_drop::not t\.is_floating_point\(\) -> )",
                "every kernel converts to float64 itself, and any floating input gives the float64 result rounded "
                "once (tested bit for bit), so converting integers here, floats too, or nothing, gives the "
                "same output"),
    Equivalence(r"estimators(?:_mixtures)?::(_rank_weights|_mixture_q_weights|_mixture_maxk_weights)::constant::"
                r"256 -> 25[57]#1$",
                "the lru_cache size decides only which weights are recomputed, never their values"),
    Equivalence(r"estimators(?:_mixtures)?::_rank_weights::constant::1 -> 0#\d+$",
                "check_k guarantees k >= 1 before any weights are built, so 0 <= k and 1 <= k agree",
                context=r"^1 <= k <= n$"),
    Equivalence(r"estimators(?:_mixtures)?::_pkpo_loo1::constant::0 -> 1#1$",
                "pad (1, 1) adds a last column that gather never reads (run starts are < B)", context=r"^\(1, 0\)$"),
    Equivalence(r"estimators(?:_mixtures)?::_maxpo_pairwise_block::constant::1 -> 0#\d+$",
                "with the diagonal kept, d[p, p] enters both the column sum and the row sum of position p and "
                "cancels in A = col - row (only the last bit of rounding can differ, below every tolerance)",
                context=r"diagonal=1"),
    Equivalence(r"estimators(?:_mixtures)?::_estimate\.rho::constant::1 -> 0#\d+$",
                "top is only a shift anchor: sum_i w_i (x_i - top) + top = sum_i w_i x_i since the weights sum to 1, "
                "so the first element serves as well as the last (rounding aside)", context=r"^-1$"),
    Equivalence(r"estimators(?:_mixtures)?::_chen_passk::(unwrap_call|constant::0 -> -1#1)",
                "rho (1 - rho) < 0 only by rounding; then sigma is NaN and the where() gives 0, as the clamp does",
                context=r"clamp_min\(0\)|^\(rho \* \(1 - rho\)\)\.clamp_min\(0\)$"),
    Equivalence(r"validate::as_reward_tensor::boolop::t\.dtype not in _FLOAT_DTYPES and \(t\.dtype == torch\.bool or "
                r"not t\.dtype\.is_floating_point\) -> .*#1$",
                "other floating dtypes are refused just above, so every dtype reaching this test is one of the four "
                "floats (both parts false) or an integer or bool dtype (both parts true)"),
    Equivalence(r"validate::as_reward_tensor::compare::t\.dtype == torch\.bool -> t\.dtype != torch\.bool#1$",
                "bool is not a floating dtype, so 'not t.dtype.is_floating_point' alone already sends it to "
                "this branch"),
    Equivalence(r"validate::as_mask::unwrap_call::mask\.detach\(\) -> mask#1$",
                "a mask that passes the check below is bool, and a bool tensor cannot require grad"),
    Equivalence(r"validate::as_mask::unwrap_call::m\.to\(device\) -> m#1$",
                "differs only for a mask on another device than the rewards: not killable on this CPU-only machine "
                "(tests/test_estimator_contract.py::test_cuda_rewards_with_a_cpu_mask kills it where CUDA exists)"),
    Equivalence(r"validate::check_k::drop_statement::k = int\(k\) -> pass#1$",
                "the unconditional k = int(k) two lines below converts the 0-d tensor anyway"),
    Equivalence(r"validate::check_k::drop_statement::k = int\(k\) -> pass#2$",
                "k is then a numbers.Integral (e.g. numpy.int64), which behaves as the int in every later use "
                "(arithmetic, the lru_cache key, the messages)"),
    Equivalence(r"validate::check_finite::compare::flat_mask is None -> flat_mask is not None#1$",
                "the one-reduction fast path is a shortcut: whenever it returns, no entry at all is non-finite, "
                "so the full masked check would pass too"),
    Equivalence(r"validate::as_reward_tensor::unwrap_call::rewards\.detach\(\) -> rewards#1$",
                "every estimator computes under torch.no_grad() from the tensor it is given, so the result carries "
                "no graph whether or not the input was detached first"),
    # ---- the lab's held-out evaluation, training step, gradient variance and loss (issue 20)
    Equivalence(r"lab_evaluate::passk_curve_ks::(binop::1 << i -> 1 >> i#2|constant::1 -> 0#3)$",
                "the filter '1 << i <= n_samples' is always true (i < n_samples.bit_length() means 2**i <= n_samples), "
                "and 1 >> i or 0 << i (0 or 1, with n_samples >= 1) keep it true"),
    Equivalence(r"lab_evaluate::evaluate::constant::0 -> 1#[12]$",
                "a process without puzzles then holds one all-zero row instead of none: its pass@k and max@k are 0, "
                "and its row sum, assigned to the empty slice counts[lo:hi], broadcasts to nothing; every sum is "
                "unchanged", context=r"^torch\.zeros\(0, n_samples"),
    Equivalence(r"lab_evaluate::evaluate::unary_drop::-1 -> 1#3$",
                "c is 2-D (puzzles, n_samples), so axis -1 and axis 1 are the same axis", context=r"^c\.sum\(-1\)$"),
    Equivalence(r"lab_train_step::_rl_step::drop_statement::_sync\(device\) -> pass#[12]$",
                "_sync only waits for queued CUDA kernels so that the wall-clock marks include them (a no-op on "
                "CPU); it changes no gradient, weight or statistic, only where the real clock is read"),
    Equivalence(r"lab_train_step::_rl_step::unwrap_call::adv\.reshape\(-1\)\.to\(device\) -> adv\.reshape\(-1\)#1$",
                "differs only for a model on another device than the CPU rewards: not killable on this CPU-only "
                "machine (on CUDA the loss would mix devices; tests/test_lab_gpu.py's RL steps kill it there)"),
    Equivalence(r"lab_train_step::_rl_step::constant::1 -> 0#4$",
                "every sampled answer has at least its first token in completion_mask (EOS included), so "
                "local_tokens >= 1 and max(local_tokens, 0) = max(local_tokens, 1)",
                context=r"^max\(local_tokens, 1\)$"),
    Equivalence(r"lab_train_step::_rl_step::constant::True -> False#1$",
                "every parameter of the lab's models takes part in every forward pass, so each gets a gradient in "
                "every backward; zeroing the old gradients in place or setting them to None then leaves the same "
                ".grad (a parameter without a gradient stays None either way)", context=r"^set_to_none=True$"),
    Equivalence(r"lab_train_step::_rl_step::binop::hi - lo -> hi \+ lo#1$",
                "g_local goes only into sums[6], which the returned record never reads"),
    Equivalence(r"lab_train_step::_rl_step::unary_drop::-1 -> 1#[45]$",
                "correct is 2-D (local prompts, B), so axis -1 and axis 1 are the same axis",
                context=r"^correct\.sum\(-1\)$"),
    Equivalence(r"lab_gradvar::_flat_grad::unwrap_call::.*\.detach\(\) -> p\.grad if p\.grad is not None else "
                r"torch\.zeros_like\(p\)#1$",
                "the gradients come from backward() without create_graph and zeros_like() does not require grad, so "
                "neither carries a graph: detach() changes nothing"),
    Equivalence(r"lab_gradvar::_repeat_statistics::constant::1 -> 0#1$",
                "summing over axis 0 first instead of axis 1, then over the rest, is still the sum of every entry "
                "(only the rounding order differs)", context=r"^\(\(g - mean\) \*\* 2\)\.sum\(1\)$"),
    Equivalence(r"lab_gradvar::(gradient_variance|gradient_study)::unary_drop::-1 -> 1#\d+$",
                "rewards is 2-D (prompts, B), so axis -1 and axis 1 are the same axis",
                context=r"^rewards\.(min|max)\(-1\)$"),
    Equivalence(r"lab_gradvar::gradient_variance::unwrap_call::.*\.to\(logp\.device\) -> .*#1$",
                "differs only for a model on another device than the CPU rewards: not killable on this CPU-only "
                "machine (on CUDA the loss would mix devices and raise)"),
    Equivalence(r"lab_gradvar::gradient_variance::constant::True -> False#1$",
                "_flat_grad reads a missing gradient as zeros, so zeroing the old gradients in place instead of "
                "setting them to None gives the same flattened gradient after the next backward",
                context=r"^set_to_none=True$"),
    Equivalence(r"lab_gradvar::gradient_variance::(compare::j < len\(methods\) - 1 -> j <= len\(methods\) - 1|"
                r"binop::len\(methods\) - 1 -> len\(methods\) \+ 1|constant::1 -> 0#4$)",
                "retain_graph=True on the last method's backward too only keeps the graph's memory until logp is "
                "replaced in the next repeat; no gradient or statistic changes"),
    Equivalence(r"lab_gradvar::PromptMoments\.add::unwrap_call::series\[[ab]\]\.double\(\) -> series\[[ab]\]#1$",
                "float32 times float64 promotes to float64 before multiplying (a float32 value converts exactly), "
                "so one .double() gives the same products as two"),
    Equivalence(r"lab_gradvar::PromptMoments\.(add|trace_cov)::unary_drop::-1 -> 1#1$",
                "every series is a (P, d) array (one row per prompt, as add() documents), so axis -1 and axis 1 are "
                "the same axis", context=r"\.sum\(-1\)$"),
    Equivalence(r"lab_gradvar::per_sample_scores\.logp::constant::0 -> -1#1$",
                "the logits' batch axis has size 1 (ids[None]), so row 0 is row -1",
                context=r"\)\[0\]$"),
    Equivalence(r"lab_gradvar::per_sample_scores\.logp::constant::0 -> -1#[23]$",
                "inside vmap ids and cm are one answer's 1-D rows, so shape[0] is shape[-1]",
                context=r"^(ids|cm)\.shape\[0\]$"),
    Equivalence(r"lab_gradvar::per_sample_scores\.logp::constant::0 -> -1#4$",
                "gather with a (T, 1) index gives (T, 1): column 0 is column -1"),
    Equivalence(r"lab_gradvar::per_sample_scores\.logp::unary_drop::-1 -> 1#[23]$",
                "the sliced logits are 2-D (T, vocabulary) inside vmap, so axis -1 and axis 1 are the same axis"),
    Equivalence(r"lab_gradvar::per_sample_scores::unwrap_call::roll\.completion_mask\[g0:g0 \+ b\]\.float\(\) -> "
                r"roll\.completion_mask\[g0:g0 \+ b\]#1$",
                "cm only multiplies the float32 log-probabilities (and gives its length): float times bool promotes "
                "to float with the same 0/1 values"),
    Equivalence(r"lab_gradvar::per_sample_scores\.logp::unwrap_call::logits\[start - 1:\]\.float\(\) -> "
                r"logits\[start - 1:\]#1$",
                "per_sample_scores runs without autocast and the lab's models hold float32 weights (nothing in the "
                "lab casts them; bf16 is autocast only, in sampling and training), so the logits are float32 and "
                ".float() returns them unchanged"),
    Equivalence(r"lab_gradvar::gradient_study::unary_drop::-1 -> 1#\d+$",
                "the token log-probabilities and completion mask are 2-D (answers, T) and the advantages 2-D "
                "(prompts, B), so axis -1 and axis 1 are the same axis",
                context=r"(\* roll\.completion_mask\)\.sum\(-1\)|^adv\[\"pkpo_loo1\"\]\.mean\(-1\)|"
                        r"^roll\.completion_mask\.sum\(-1\))$"),
    Equivalence(r"lab_gradvar::gradient_study::unwrap_call::roll\.completion_mask\.sum\(-1\)\.double\(\) -> "
                r"roll\.completion_mask\.sum\(-1\)#1$",
                "lengths are integer counts: as int64 or float64 arrays they give the same means and differences "
                "(numpy's mean of integers is float64)"),
    Equivalence(r"lab_gradvar::gradient_study::constant::0 -> (1|-1)#[34]$",
                "every method's gradient in every repeat has the same length (the parameter count), so any method "
                "and any repeat give the same numel()", context=r"^(methods\[0\]|full\[methods\[0\]\]\[0\])$"),
    Equivalence(r"lab_gradvar::gradient_study\.wrong_minus_correct::(constant::0 -> -?1#1|"
                r"drop_statement::raise ValueError\(\"empty resample\"\) -> pass#1)$",
                "bootstrap_prompts only passes all ones or a resample's counts, whose sum is the number of prompts "
                "(at least 2 here), so w.sum() is never 0, 1 or -1 and the guard never fires"),
    Equivalence(r"lab_gradvar::adaptive_lambdas::constant::0\.0 -> 1\.0#1$",
                "num's leading entry is read only where den's leading entry, the constant 0.0, is > 0: never (the "
                "first value is always initial)", context=r"^\[0\.0\]$"),
    Equivalence(r"lab_gradvar::adaptive_lambdas::constant::1\.0 -> 2\.0#2$",
                "safe's fill value is the divisor only where den <= 0, and there the outer where() returns initial; "
                "any non-zero fill gives the same values, without a division warning",
                context=r"^np\.where\(den > 0, den, 1\.0\)$"),
    Equivalence(r"lab_gradvar::gradient_study::boolop::keep_h is None or keep_e is None -> "
                r"keep_h is None and keep_e is None#[12]$",
                "keep_h and keep_e are assigned together (both None before the first repeat, both tensors from then "
                "on), so one of them is None exactly when both are"),
    Equivalence(r"lab_gradvar::gradient_study::drop_statement::raise RuntimeError\(\"no repeat was recorded\"\) -> "
                r"pass#1$",
                "unreachable: repeats >= 2 is checked on entry, so the loop body runs and sets keep_h and keep_e "
                "(the guard is there for the type checker)"),
    Equivalence(r"lab_loss::policy_loss::unwrap_call::\(clipped > pg\)\.to\(m\.dtype\) -> clipped > pg#1$",
                "the bool tensor is multiplied by m at once, and bool * float promotes to m's dtype with the same "
                "0/1 values, so the sum and the clip fraction are bit for bit the same"),
    Equivalence(r"trl_advantages::MaxKAdvantageMixin\.maxk_metrics::constant::0 -> -1#1$",
                "maxk_rewards returns a 1-D vector (nansum over dim 1 of the 2-D reward matrix), so shape[0] and "
                "shape[-1] are the same length", context=r"^rewards\.shape\[0\]$"),
    Equivalence(r"trl_advantages::MaxKAdvantageMixin\._check_groups_are_prompts::constant::0 -> -1#\d+$",
                "every member of a group equals its first member exactly when every member equals its last",
                context=r"^group\[0\]$"),
    Equivalence(r"estimators(?:_mixtures)?::_chen_passk::(compare::sigma > 0 -> sigma >= 0|constant::0 -> -1)#\d+$",
                "sigma = 0 only when all rewards of the group are equal; then q == rho exactly (the shift is "
                "added back to exact zeros), so (q - rho)/1 and 0/0 masked by the outer where both give 0",
                context=r"sigma > 0"),
    # lstatistics (issue 20)
    Equivalence(r"lstatistics::lstatistic_coefficients::(drop_statement::m = int\(m\) if needs_m else 0 -> pass|"
                r"constant::0 -> -?1)#1$",
                "m is read only by top_mean, bottom_mean and trimmed_mean, where the check just above has made "
                "it an int (not a bool), so int(m) is m; the other names never read m, whatever its value",
                context=r"(^def lstatistic_coefficients\()|(^int\(m\) if needs_m else 0$)"),
    Equivalence(r"lstatistics::lstatistic_coefficients::constant::0 -> -1#4$",
                "2 m is even, so -1 <= 2 m holds exactly when 0 <= 2 m does", context=r"^0 <= 2 \* m < k$"),
    Equivalence(r"lstatistics::exact_mixture_advantages::constant::1 -> 2#6$",
                "next() stops at the first p with xs[p - 1] == xs[i - 1]; p = i always qualifies, so p never "
                "reaches the end of the range, b + 1 or b + 2", context=r"^b \+ 1$"),
    Equivalence(r"lstatistics::exact_mixture_advantages::constant::0 -> -?1#[23]$",
                "the start of the sum (k >= 2) or the k = 1 value adds the same constant to every Q of the "
                "group, and only Q - mean(Q) is used", context=r"(^Fraction\(0\)$)|( if k >= 2 else 0$)"),
    Equivalence(r"lstatistics::exact_mixture_advantages::constant::0 -> -?1#5$",
                "every entry of out is overwritten: order is a permutation of range(b)", context=r"^Fraction\(0\)$"),
    # grouping (issue 20)
    Equivalence(r"grouping::method_size_problem::constant::4096 -> 409[57]#1$",
                "the lru_cache size decides only which answers are recomputed, never the answers"),
    Equivalence(r"grouping::_codes::unwrap_call::group_ids\.detach\(\) -> group_ids#1$",
                "the labels are only read back with tolist(), which reads a tensor that requires grad just as well"),
    Equivalence(r"grouping::_codes::constant::1 -> 2#2$",
                "numpy's reshape takes any negative size as the one inferred dimension, so an object array's "
                "reshape(-2) is reshape(-1)", context=r"^-1$"),
    Equivalence(r"grouping::(group_advantages|batch_maxk_estimate)::("
                r"drop_statement::codes = codes\.to\((r\.)?device\) -> pass|"
                r"unwrap_call::codes\.to\((r\.)?device\) -> codes|"
                r"drop_statement::ok = ok\.to\(device\) -> pass|unwrap_call::ok\.to\(device\) -> ok)#1$",
                "_codes and a CPU valid mask give CPU tensors, so these moves differ only for rewards on another "
                "device: not killable on this CPU-only machine (test_cuda_rewards_with_cpu_labels_and_mask is "
                "written to kill them where CUDA exists; no GPU was available to run it)"),
    Equivalence(r"grouping::group_advantages::unwrap_call::group_scale_factors\(.*\)\.to\(device\) -> "
                r"group_scale_factors\(method, k, sizes\[kept\], scale\)#1$",
                "sizes is a bincount of codes already on the rewards' device, and group_scale_factors builds its "
                "result from sizes (to, clone, ones_like, full_like), so it is on that device already"),
    Equivalence(r"grouping::group_advantages::unwrap_call::r\.detach\(\) -> r#1$",
                "r is read only by isfinite, float(r[i]) and _dense_groups, whose float64 copy goes to "
                "maxpo.advantages (computed under no_grad, detached input check) and float(): the advantages "
                "carry no graph either way (test_rewards_that_require_grad_give_a_plain_result)"),
    Equivalence(r"grouping::group_advantages::drop_statement::r = r\.detach\(\) -> pass#1$",
                "the same as dropping the .detach() call: r is read only through isfinite, float() and the "
                "float64 copy given to maxpo.advantages, which computes without a graph"),
    Equivalence(r"grouping::batch_maxk_estimate::unwrap_call::r\.detach\(\) -> r#1$",
                "the estimate is returned as float(mean of maxpo.maxk_estimate(...)), a Python number: whether the "
                "rewards required grad cannot show in it"),
    Equivalence(r"grouping::group_advantages::unwrap_call::r\.to\(torch\.float64\) -> r#1$",
                "for every real dtype isfinite gives the same answer before and after the exact widening to "
                "float64 (integer and bool tensors are all finite; NaN and inf stay NaN and inf); only complex "
                "rewards, which no method supports, could differ"),
    Equivalence(r"grouping::group_advantages::(compare::s > 0 -> s >= 0#1|constant::0 -> -1#2)$",
                "this only adds size 0 to problems; method_size_problem(m, 0, k) returns a message for every "
                "method (an empty group is a ValueError), and problems[0] is never read: usable tests s > 0 first "
                "and why is read for non-empty groups only", context=r"^s > 0$"),
    Equivalence(r"grouping::group_advantages::unary_drop::-1 -> 1#[12]$",
                "the scale factors are 1-D and adv is 2-D (groups, B_max): unsqueeze(1) is unsqueeze(-1) and "
                "amax over dim 1 is amax over dim -1", context=r"(\.unsqueeze\(-1\)$)|(^dim=-1$)"),
    Equivalence(r"grouping::_dense_groups::unary_drop::-1 -> 1#[12]$",
                "nonzero() of a 1-D bool tensor is (m, 1), so squeeze(1) is squeeze(-1)",
                context=r"\.nonzero\(\)\.squeeze\(-1\)$"),
    Equivalence(r"grouping::_dense_groups::constant::0 -> -1#2$",
                "kept_sizes is 1-D: cumsum over dim -1 is cumsum over dim 0",
                context=r"^torch\.cumsum\(kept_sizes, 0\)$"),
    Equivalence(r"grouping::_dense_groups::(unary_drop::-1 -> 1#3|constant::1 -> [20]#3)$",
                "the fill value of dense_of_group is never read: it is indexed only at codes[rows], groups that "
                "have a row in take and so are in kept, whose entries arange overwrites",
                context=r"(^-1$)|(^torch\.full\(\(n_groups,\), -1,)"),
    Equivalence(r"grouping::_dense_groups::constant::True -> False#1$",
                "an unstable sort only permutes the rows within a group; rows, dense_row and pos carry each row to "
                "its slot and back, and every method's advantages (and the max@K U-statistic) are symmetric in "
                "the group's samples, so each row gets the same value (only the order of sums in rounding could "
                "differ)", context=r"^stable=True$"),
]


def _equivalence_rule(m: Mutant) -> Equivalence | None:
    return next((r for r in EQUIVALENT if re.search(r.id, m.id) and (not r.context or re.search(r.context, m.context))),
                None)


def _equivalence(m: Mutant) -> str | None:
    rule = _equivalence_rule(m)
    return rule.argument if rule else None


# --------------------------------------------------------------------------- mutants
@dataclass
class Mutant:
    id: str
    target: str
    function: str
    line: int
    col: int
    operator: str
    before: str
    after: str
    node_index: int
    variant: int
    lines: tuple[int, int] = (0, 0)  # the lines whose execution means the mutant's code ran
    context: str = ""  # the source of the mutated node's parent expression or statement
    status: str = "pending"  # killed | survived | timeout | not_covered | error
    killed_by: str | None = None
    seconds: float = 0.0
    equivalent: str | None = None
    carried_over: bool = False  # killed in the earlier report given with --survivors-of (not re-run)


_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
               ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
               ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
_CMP_SWAP = {ast.Lt: [ast.LtE, ast.GtE], ast.LtE: [ast.Lt, ast.Gt], ast.Gt: [ast.GtE, ast.LtE],
             ast.GtE: [ast.Gt, ast.Lt], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.In: [ast.NotIn],
             ast.NotIn: [ast.In], ast.Is: [ast.IsNot], ast.IsNot: [ast.Is]}
_UNWRAP = {"to", "clone", "detach", "clamp_min", "clamp", "double", "float", "contiguous"}
_MAXMIN = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum", "all": "any", "any": "all"}


def _skip_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, __all__, strings' insides."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            for n in ast.walk(node):
                skip.add(id(n))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            mark(body[0])
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.arg):
            mark(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            mark(node)
        if isinstance(node, ast.JoinedStr):
            mark(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mark(node)
    return skip


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _variants(node: ast.AST, parent_stmt_list: bool) -> list[tuple[str, str, Any]]:
    """Mutations of one node: (operator, description of the new code, how to apply)."""
    out: list[tuple[str, str, Any]] = []
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP_SWAP:
        out.append(("binop", "", ("op", _BINOP_SWAP[type(node.op)])))
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        for new in _CMP_SWAP.get(type(node.ops[0]), []):
            out.append(("compare", "", ("cmp", new)))
    if isinstance(node, ast.BoolOp):
        out.append(("boolop", "", ("op", ast.Or if isinstance(node.op, ast.And) else ast.And)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
        out.append(("unary_drop", "", ("replace", node.operand)))
    if isinstance(node, ast.Constant) and not isinstance(node.value, str):
        v = node.value
        if isinstance(v, bool):
            out.append(("constant", "", ("const", not v)))
        elif isinstance(v, int):
            out.append(("constant", "", ("const", v + 1)))
            out.append(("constant", "", ("const", v - 1)))
        elif isinstance(v, float):
            out.append(("constant", "", ("const", 2 * v if v else 1.0)))
    if isinstance(node, (ast.If, ast.IfExp, ast.While)):
        out.append(("negate_if", "", ("negate",)))
    if parent_stmt_list:
        drop = False
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            drop = True
        elif isinstance(node, (ast.Raise, ast.AugAssign)):
            drop = True
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            tnames = _names(node.targets[0])
            drop = bool(tnames) and bool(tnames & _names(node.value))
        if drop:
            out.append(("drop_statement", "pass", ("drop",)))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in _UNWRAP:
            out.append(("unwrap_call", "", ("replace", node.func.value)))
        if node.func.attr in _MAXMIN:
            out.append(("max_min", "", ("attr", _MAXMIN[node.func.attr])))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("max", "min"):
        out.append(("max_min", "", ("name", _MAXMIN[node.func.id])))
    return out


def _apply(node: ast.AST, how: tuple) -> ast.AST | None:
    """Apply a mutation to ``node`` (a copy); returns the replacement node, or None to drop the statement."""
    kind = how[0]
    if kind == "op":
        node.op = how[1]()
    elif kind == "cmp":
        node.ops = [how[1]()]
    elif kind == "replace":
        return how[1]
    elif kind == "const":
        node.value = how[1]
    elif kind == "negate":
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    elif kind == "drop":
        return None
    elif kind == "attr":
        node.func.attr = how[1]
    elif kind == "name":
        node.func.id = how[1]
    return node


_COMPOUND = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _indexed(tree: ast.AST) -> list[tuple[ast.AST, ast.AST | None, str | None, str, tuple[int, int]]]:
    """Every node with (parent, field, qualified function name, lines of its statement), in a fixed order.

    The lines are those of the innermost statement holding the node (only the first line of a
    compound statement such as ``if``): if none of them runs, the mutant's code never runs.
    """
    out: list[tuple[ast.AST, ast.AST | None, str | None, str, tuple[int, int]]] = []

    def visit(node: ast.AST, parent: ast.AST | None, fld: str | None, func: str, lines: tuple[int, int]) -> None:
        if isinstance(node, ast.stmt):
            lines = (node.lineno, node.lineno if isinstance(node, _COMPOUND) else node.end_lineno or node.lineno)
        out.append((node, parent, fld, func, lines))
        name = func
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{func}.{node.name}" if func != "<module>" else node.name
        for f, value in ast.iter_fields(node):
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        visit(item, node, f, name, lines)
            elif isinstance(value, ast.AST):
                visit(value, node, f, name, lines)

    visit(tree, None, None, "<module>", (0, 0))
    return out


def _in_scope(func: str, functions: tuple[str, ...] | None) -> bool:
    if functions is None:
        return True
    return any(func == f or func.startswith(f + ".") for f in functions)


def _segment(source: str, node: ast.AST) -> str:
    text = ast.get_source_segment(source, node) or ast.unparse(node)
    return " ".join(text.split())[:160]


def make_mutants(target: Target) -> tuple[str, list[Mutant]]:
    source = (ROOT / target.path).read_text()
    tree = ast.parse(source)
    skip = _skip_nodes(tree)
    mutants: list[Mutant] = []
    seen: dict[str, int] = {}
    for index, (node, parent, fld, func, lines) in enumerate(_indexed(tree)):
        if id(node) in skip or not _in_scope(func, target.functions) or not hasattr(node, "lineno"):
            continue
        in_list = parent is not None and isinstance(getattr(parent, fld, None), list) and isinstance(node, ast.stmt)
        for variant, (op, _, how) in enumerate(_variants(node, in_list)):
            before = _segment(source, node)
            if how[0] == "drop":
                after = "pass"
            else:
                replacement = _apply(copy.deepcopy(node), _copy_how(how))
                after = " ".join(ast.unparse(replacement).split())[:160]
            key = f"{target.name}::{func}::{op}::{before} -> {after}"
            seen[key] = seen.get(key, 0) + 1
            context = _segment(source, parent) if parent is not None and hasattr(parent, "lineno") else before
            mutants.append(Mutant(id=f"{key}#{seen[key]}", target=target.name, function=func, line=node.lineno,
                                  col=node.col_offset, operator=op, before=before, after=after,
                                  node_index=index, variant=variant, lines=lines, context=context))
    return source, mutants


def _copy_how(how: tuple) -> tuple:
    return tuple(copy.deepcopy(h) if isinstance(h, ast.AST) else h for h in how)


def mutated_code(target: Target, source: str, mutant: Mutant) -> Any:
    tree = ast.parse(source)
    nodes = _indexed(tree)
    node, parent, fld, _, _ = nodes[mutant.node_index]
    how = _copy_how(_variants(node, isinstance(getattr(parent, fld, None), list) and isinstance(node, ast.stmt))[
        mutant.variant][2])
    new = _apply(node, how)
    if new is not node:
        value = getattr(parent, fld)
        if isinstance(value, list):
            i = next(j for j, item in enumerate(value) if item is node)
            value[i] = new if new is not None else ast.Pass()
        else:
            setattr(parent, fld, new)
    ast.fix_missing_locations(tree)
    return compile(tree, str(ROOT / target.path), "exec")


# --------------------------------------------------------------------------- running
def _rebind(module: Any, old: dict[str, Any]) -> None:
    """After re-executing ``module``'s code in place, point the project's other modules at the new objects.

    ``from maxpo.estimators import advantages`` (in ``maxpo``, the lab, the tests) copied a
    reference to the old function; every such module-level reference is replaced.
    """
    swaps = {id(v): module.__dict__[k] for k, v in old.items()
             if k in module.__dict__ and module.__dict__[k] is not v and not k.startswith("__")}
    root = str(ROOT)
    for other in list(sys.modules.values()):
        if other is module or not (getattr(other, "__file__", None) or "").startswith(root):
            continue
        for k, v in list(vars(other).items()):
            if id(v) in swaps and v is old.get(k, v):
                setattr(other, k, swaps[id(v)])


def _run_items(items: list[Any], target: Target, code: Any, result_path: str, coverage: bool) -> None:
    """In a forked child: put ``code`` in place of the target module, run the tests, write the outcome."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from _pytest.runner import runtestprotocol

    lines: set[int] = set()
    if coverage:
        wanted = str(ROOT / target.path)

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "line":
                lines.add(frame.f_lineno)
            return local

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            if frame.f_code.co_filename != wanted:
                return None
            lines.add(frame.f_lineno)
            return local

        sys.settrace(tracer)
        threading.settrace(tracer)
    out: dict[str, Any] = {"failed": None}
    module = sys.modules[target.module]
    old = dict(module.__dict__)
    try:
        exec(code, module.__dict__)
    except BaseException as exc:  # noqa: BLE001 - a mutant that breaks the module's own code
        out["failed"] = f"the module raises when loaded: {type(exc).__name__}: {exc}"[:300]
    if out["failed"] is None:
        _rebind(module, old)
        for i, item in enumerate(items):
            reports = runtestprotocol(item, log=False, nextitem=items[i + 1] if i + 1 < len(items) else None)
            if any(r.failed for r in reports):
                out["failed"] = item.nodeid
                break
    sys.settrace(None)
    out["lines"] = sorted(lines)
    Path(result_path).write_text(json.dumps(out))
    os._exit(0)


def run_one(items: list[Any], target: Target, code: Any, timeout: float, coverage: bool = False) -> dict[str, Any]:
    """Fork, run the tests against ``code`` in the child, wait at most ``timeout`` seconds."""
    fd, result_path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    t0 = time.perf_counter()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            _run_items(items, target, code, result_path, coverage)
        finally:
            os._exit(3)
    while time.perf_counter() - t0 < timeout:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.unlink(result_path)
        return {"timeout": True, "seconds": time.perf_counter() - t0}
    text = Path(result_path).read_text()
    os.unlink(result_path)
    out = json.loads(text) if text else {"crashed": True, "failed": "the test process died"}
    out["seconds"] = time.perf_counter() - t0
    return out


def _test_args(target: Target) -> list[str]:
    """The target's test files (globs expanded, missing ones dropped) and its -k expression."""
    args: list[str] = []
    for pattern in target.tests:
        matches = sorted(glob.glob(str(ROOT / pattern))) if any(c in pattern for c in "*?[") else (
            [str(ROOT / pattern)] if (ROOT / pattern).exists() else [])
        args += [m for m in matches if m not in args]
    if target.keyword:
        args += ["-k", target.keyword]
    return args


class _Plugin:
    """pytest plugin: collect once in this process, then fork a child per mutant instead of the test loop."""

    def __init__(self, target: Target, only: str | None, timeout_factor: float, verbose: bool,
                 survivors_of: str | None, out_path: Path | None) -> None:
        self.target, self.only, self.timeout_factor, self.verbose = target, only, timeout_factor, verbose
        self.survivors_of, self.out_path = survivors_of, out_path
        self.report: dict[str, Any] | None = None

    def pytest_runtestloop(self, session: Any) -> bool:
        self.report = run_target(self.target, list(session.items), self.only, self.timeout_factor, self.verbose,
                                 self.survivors_of, self.out_path)
        return True


def _machine() -> dict[str, Any]:
    from maxpo.provenance import machine_description

    return {**machine_description(), "note": "a 2-core machine shared with other jobs; timings are rough"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_target(target: Target, items: list[Any], only: str | None, timeout_factor: float,
               verbose: bool = False, survivors_of: str | None = None, out_path: Path | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    source, mutants = make_mutants(target)
    if only:
        mutants = [m for m in mutants if only in m.id]
    previous: dict[str, dict[str, Any]] = {}
    if survivors_of:  # keep the kills of an earlier report on the same module source; re-run the rest
        old = json.loads(Path(survivors_of).read_text())
        if old.get("module_sha") != _sha(source):
            raise SystemExit(f"{survivors_of} was made from another version of {target.path}; run without it")
        previous = {r["id"]: r for r in old["results"] if r["status"] in ("killed", "timeout")}
    print(f"{target.name}: {len(mutants)} mutants; {len(items)} tests from "
          f"{' '.join(Path(a).name for a in _test_args(target))}", flush=True)
    # the forked child replaces the module in sys.modules in place; tests that import it only inside a test
    # body (lab_evaluate's) would otherwise leave it out of sys.modules, and every child would die on the lookup
    importlib.import_module(target.module)
    unmutated = compile(source, str(ROOT / target.path), "exec")
    base = run_one(items, target, unmutated, timeout=1800, coverage=True)
    print(f"  line coverage of the unmutated tests measured in {base['seconds']:.1f} s", flush=True)
    if base.get("failed") or base.get("timeout"):
        raise SystemExit(f"{target.name}: the tests fail without any mutant (first failure: {base.get('failed')}); "
                         "fix them first")
    covered = set(base.get("lines", []))
    clean = run_one(items, target, unmutated, timeout=1800)  # the timing without the tracer
    timeout = timeout_factor * clean["seconds"] + 20
    print(f"  tests pass unmutated in {clean['seconds']:.1f} s; per-mutant timeout {timeout:.0f} s", flush=True)
    for i, m in enumerate(mutants, 1):
        if m.id in previous:
            p = previous[m.id]
            m.status, m.killed_by, m.seconds = p["status"], p["killed_by"], p["seconds"]
            m.carried_over = True
        elif not covered.intersection(range(m.lines[0], m.lines[1] + 1)):
            m.status = "not_covered"
        else:
            try:
                code = mutated_code(target, source, m)
            except (SyntaxError, ValueError, TypeError) as exc:  # a mutant that does not compile
                code, res = None, {"failed": f"does not compile: {exc}", "seconds": 0.0}
            if code is not None:
                res = run_one(items, target, code, timeout)
            m.seconds = round(res["seconds"], 2)
            if res.get("timeout"):
                m.status, m.killed_by = "timeout", "per-mutant timeout"
            elif res.get("failed"):
                m.status, m.killed_by = "killed", res["failed"]
            else:
                m.status = "survived"
        if m.status in ("survived", "not_covered"):
            m.equivalent = _equivalence(m)
        mark = {"killed": ".", "timeout": "T", "survived": "S", "not_covered": "-"}[m.status]
        if verbose:
            print(f"{mark} {m.seconds:6.1f} s  {m.id}  <- {m.killed_by}", flush=True)
        else:
            print(mark, end="\n" if i % 60 == 0 else "", flush=True)
        if m.status in ("survived", "not_covered") and not m.equivalent:
            print(f"\n  {m.status}: {m.id}  (line {m.line})", flush=True)
        if out_path and (i % 10 == 0 or i == len(mutants)):  # a partial report survives an interrupted run
            out_path.write_text(json.dumps(_report(target, source, mutants, survivors_of, clean["seconds"], only),
                                           indent=1) + "\n")
    print(flush=True)
    report = _report(target, source, mutants, survivors_of, clean["seconds"], only)
    summary = report["summary"]
    print(f"  {target.name}: {summary['killed']} killed of {summary['mutants'] - summary['equivalent']} "
          f"non-equivalent ({summary['mutants']} mutants, {summary['equivalent']} equivalent): "
          f"score {summary['score']:.1%}; {time.perf_counter() - started:.0f} s for the target", flush=True)
    report["target_seconds"] = round(time.perf_counter() - started, 1)
    if out_path:
        out_path.write_text(json.dumps(report, indent=1) + "\n")
    return report


def _report(target: Target, source: str, mutants: list[Mutant], survivors_of: str | None, clean_seconds: float,
            only: str | None) -> dict[str, Any]:
    from maxpo.provenance import git_state

    done = [m for m in mutants if m.status != "pending"]
    killed = sum(m.status in ("killed", "timeout") for m in done)
    equivalent = sum(m.equivalent is not None for m in done)
    non_eq = len(done) - equivalent
    score = killed / non_eq if non_eq else 1.0
    used = {_equivalence_rule(m) for m in done if m.equivalent}
    stale = [r.id for r in EQUIVALENT if r.id.startswith(target.name) and r not in used]
    return {
        "target": target.name,
        "module": target.path,
        "module_sha": _sha(source),
        "survivors_of": survivors_of and Path(survivors_of).name,
        "functions": list(target.functions) if target.functions else "all",
        "tests": [str(Path(a).relative_to(ROOT)) if a.startswith(str(ROOT)) else a for a in _test_args(target)],
        "machine": _machine(),
        **git_state(["maxpo", "tests", "benchmarks/mutation_test.py"]),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": len(done) == len(mutants) and not only,
        "unmutated_test_seconds": round(clean_seconds, 1),
        "summary": {
            "mutants": len(done), "not_run_yet": len(mutants) - len(done), "killed": killed,
            "equivalent": equivalent, "survived_not_equivalent": non_eq - killed, "score": round(score, 4),
            "score_definition": "killed (test failure or timeout) / (mutants - argued equivalent)",
        },
        "stale_equivalence_entries": stale if len(done) == len(mutants) and not only else [],
        "results": [asdict(m) for m in mutants],
    }


def run_in_pytest(target: Target, only: str | None, timeout_factor: float, verbose: bool,
                  survivors_of: str | None = None, out_path: Path | None = None) -> dict[str, Any]:
    """Collect ``target``'s tests with pytest in this process and run every mutant against them."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import pytest
    import torch
    from hypothesis import settings

    torch.set_num_threads(1)
    # the same examples every time, and no example database carried between mutants
    settings.register_profile("mutation", database=None, derandomize=True, deadline=None)
    settings.load_profile("mutation")
    plugin = _Plugin(target, only, timeout_factor, verbose, survivors_of, out_path)
    rc = pytest.main(["-q", "-s", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                      "-m", "not gpu and not book", *_test_args(target)],
                     plugins=[plugin])
    if plugin.report is None:
        raise SystemExit(f"{target.name}: pytest could not collect the tests (exit code {rc})")
    print("  (pytest's closing 'no tests ran' is expected: the selection's tests ran in a forked child per mutant)",
          flush=True)
    return plugin.report


def rescore(path: Path) -> dict[str, Any]:
    """Apply the current :data:`EQUIVALENT` arguments to a report's survivors and recompute its summary."""
    old = json.loads(path.read_text())
    target = TARGETS[old["target"]]
    source = (ROOT / target.path).read_text()
    if old.get("module_sha") != _sha(source):
        raise SystemExit(f"{path} was made from another version of {target.path}; run the mutants again")
    names = set(Mutant.__dataclass_fields__)
    mutants = [Mutant(**{k: (tuple(v) if k == "lines" else v) for k, v in r.items() if k in names})
               for r in old["results"]]
    for m in mutants:
        m.equivalent = _equivalence(m) if m.status in ("survived", "not_covered") else None
    new = _report(target, source, mutants, old.get("survivors_of"), old["unmutated_test_seconds"], None)
    for key in ("machine", "commit", "dirty", "command", "date", "tests"):  # the run's own provenance
        new[key] = old[key]
    if "target_seconds" in old:  # the run's own wall time
        new["target_seconds"] = old["target_seconds"]
    new["rescored"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path.write_text(json.dumps(new, indent=1) + "\n")
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS), help=f"any of {', '.join(TARGETS)}")
    parser.add_argument("--only", help="run only mutants whose id contains this string (report not written)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per mutant, with its time")
    parser.add_argument("--timeout-factor", type=float, default=3.0,
                        help="per-mutant timeout = factor x the unmutated test time + 20 s")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON reports")
    parser.add_argument("--rescore", action="store_true",
                        help="only re-apply the equivalence arguments to the reports in --out (no mutant is run)")
    parser.add_argument("--survivors-of", metavar="FOLDER",
                        help="re-run only what survived in FOLDER/<target>.json (same module source), keep its kills")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    if args.rescore:
        for name in args.targets:
            path = Path(args.out) / f"{name}.json"
            if path.is_file():
                summary = rescore(path)["summary"]
                print(f"{name}: score {summary['score']:.1%} ({summary['killed']} killed, {summary['equivalent']} "
                      f"equivalent, {summary['survived_not_equivalent']} survivors without an argument)")
        return 0
    if args.list:
        for name in args.targets:
            for m in make_mutants(TARGETS[name])[1]:
                if not args.only or args.only in m.id:
                    print(f"{m.line:4d} {m.id}")
        return 0
    if len(args.targets) > 1:  # one process per target: pytest collects each target's tests afresh
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in TARGETS]
        codes = [subprocess.run([sys.executable, __file__, name, *rest]).returncode for name in args.targets]
        return max(codes)
    name = args.targets[0]
    previous = str(Path(args.survivors_of) / f"{name}.json") if args.survivors_of else None
    out_path = None
    if not args.only:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        out_path = Path(args.out) / f"{name}.json"
    run_in_pytest(TARGETS[name], args.only, args.timeout_factor, args.verbose, previous, out_path)
    if out_path:
        print(f"  report: {out_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
