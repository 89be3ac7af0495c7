"""The lab's GPT, its KV cache, exact sampling and the policy-gradient loss."""
from __future__ import annotations

import math

import pytest
import torch

import maxpo
from maxpo.lab.loss import advantage_scale, policy_loss
from maxpo.lab.model import GPT, GPTConfig
from maxpo.lab.sampling import pad_prompts, sample, teacher_rollout, token_logprobs
from maxpo.lab.seeding import derive_seed, uniforms

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gpt() -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, n_layer=2, n_head=2, d_model=16, max_len=32))
    with torch.no_grad():  # a less uniform model than the init, so the checks bite
        for p in model.parameters():
            p.mul_(8)
    return model.eval()


def test_gpt_config_errors() -> None:
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, d_model=10, n_head=3)
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig(vocab_size=10, n_layer=0)


def test_too_long_sequence_is_an_error(gpt: GPT) -> None:
    with pytest.raises(ValueError, match="max_len=32"):
        gpt(torch.zeros(1, 33, dtype=torch.long))


def test_kv_cache_matches_full_forward(gpt: GPT) -> None:
    x = torch.randint(3, 12, (3, 9))
    full = gpt(x)
    cache = gpt.new_cache(3, 16)
    parts = [gpt(x[:, :4], cache=cache)] + [gpt(x[:, t : t + 1], cache=cache) for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_left_padding_gives_the_unpadded_logits(gpt: GPT) -> None:
    short, long = [4, 5, 6], [7, 8, 9, 10, 11]
    ids, mask = pad_prompts([short, long], pad_id=0, device=torch.device("cpu"))
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
    out = gpt(ids, attention_mask=mask, position_ids=pos)
    alone = gpt(torch.tensor([short]))
    torch.testing.assert_close(out[0, -3:], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(out).all()  # padded query rows see themselves: no NaN


def test_sampling_with_padding_equals_sampling_alone(gpt: GPT) -> None:
    prompts = [[1, 4, 5], [1, 7, 8, 9, 10]]
    u = uniforms(7, 2, 6)
    both = sample(gpt, prompts, u, eos_id=2, pad_id=0)
    for i, p in enumerate(prompts):
        alone = sample(gpt, [p], u[i : i + 1], eos_id=2, pad_id=0)
        assert alone.answers[0] == both.answers[i]
        torch.testing.assert_close(alone.entropy[0], both.entropy[i], atol=1e-4, rtol=1e-4)


def test_sampling_follows_the_model_distribution(gpt: GPT) -> None:
    """Inverse-CDF sampling with the given uniforms draws from softmax(logits) exactly."""
    prompt = [1, 4, 5]
    n = 20000
    roll = sample(gpt, [prompt] * n, uniforms(3, n, 1), eos_id=2, pad_id=0)
    first = torch.tensor([a[0] if a else 2 for a in roll.answers])
    probs = torch.softmax(gpt(torch.tensor([prompt]))[0, -1], -1)
    freq = torch.bincount(first, minlength=12).double() / n
    se = (probs.double() * (1 - probs.double()) / n).sqrt()
    assert ((freq - probs.double()).abs() <= 5 * se + 1e-9).all()


def test_teacher_rollout_logprobs_match_manual(gpt: GPT) -> None:
    prompts, answers = [[1, 4, 5], [1, 6]], [[7, 8], [9]]
    roll = teacher_rollout(prompts, answers, eos_id=2, pad_id=0, device=torch.device("cpu"))
    lp = token_logprobs(gpt, roll)
    for i, (p, a) in enumerate(zip(prompts, answers)):
        seq = p + a + [2]
        logits = gpt(torch.tensor([seq]))[0]
        want = torch.log_softmax(logits, -1)[len(p) - 1 : -1].gather(1, torch.tensor(a + [2])[:, None]).squeeze(1)
        got = lp[i][roll.completion_mask[i]]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_derived_streams_are_stable() -> None:
    assert derive_seed(0, "prompts", 3) == derive_seed(0, "prompts", 3) != derive_seed(0, "prompts", 4)
    torch.testing.assert_close(uniforms(5, 4, 3), uniforms(5, 4, 3))
    assert 0 <= float(uniforms(5, 100, 10).min()) and float(uniforms(5, 100, 10).max()) < 1


# --------------------------------------------------------------------------- loss
def test_every_method_has_a_loss_scale() -> None:
    for m in maxpo.METHODS:
        assert advantage_scale(m, 8, 8 if m in ("tang_loo", "grpo_passk") else 4) > 0
    with pytest.raises(ValueError, match="unknown advantage method"):
        advantage_scale("nope", 8, 4)


def test_scaled_maxpo_is_the_canonical_advantage() -> None:
    r = torch.rand(5, 8, dtype=torch.float64)
    a = maxpo.advantages(r, 3, method="maxpo") * advantage_scale("maxpo", 8, 3)
    torch.testing.assert_close(a, maxpo.advantages(r, 3, method="canonical"))


def test_sequence_loss_gradient_is_the_estimator() -> None:
    """On-policy, no KL: grad L = (1/G) sum_i A_i grad log pi(y_i)."""
    torch.manual_seed(0)
    theta = torch.randn(6, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0]] * 3 + [[1, 1, 0, 0]] * 3, dtype=torch.bool)
    adv = torch.randn(6)
    logp = torch.log_softmax(theta, -1)
    parts = policy_loss(logp, logp.detach(), adv, mask, "sequence", denom=3.0, clip_eps=0.2)
    (g,) = torch.autograd.grad(parts.loss, theta, retain_graph=True)
    want_loss = -(adv[:, None] * logp * mask).sum() / 3.0
    (want,) = torch.autograd.grad(want_loss, theta)
    torch.testing.assert_close(g, want)
    assert parts.clip_frac == 0.0


def test_token_aggregation_and_clipping_and_kl() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.9]]))
    old = torch.log(torch.tensor([[0.25, 0.5], [0.25, 0.5]]))
    mask = torch.tensor([[True, True], [True, False]])
    adv = torch.tensor([1.0, -1.0])
    parts = policy_loss(logp, old, adv, mask, "token", denom=3.0, clip_eps=0.2)
    # token 1 of answer 0: ratio 2 clipped to 1.2 for a positive advantage; the others have ratio 1
    assert parts.loss.item() == pytest.approx((-1.2 - 1.0 + 1.0) / 3)
    assert parts.clip_frac == pytest.approx(1 / 3)
    same = policy_loss(logp, logp.detach(), adv, mask, "token", 3.0, 0.0, ref_logp=logp.detach(), kl_coef=1.0)
    assert same.kl == 0.0
    other = policy_loss(logp, logp.detach(), adv, mask, "token", 3.0, 0.0, ref_logp=old, kl_coef=1.0)
    d = (old - logp)[mask]
    assert other.kl == pytest.approx(float((torch.exp(d) - d - 1).mean()))
    with pytest.raises(ValueError, match="aggregation"):
        policy_loss(logp, old, adv, mask, "batch", 3.0)
    with pytest.raises(ValueError, match="normaliser"):
        policy_loss(logp, old, adv, mask, "token", 0.0)
    assert math.isfinite(parts.pg)
