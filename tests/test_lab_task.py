"""The lab's task generator, verifier and character tokenizer."""
from __future__ import annotations

import pytest

from maxpo.lab.task import (
    DIFFICULTIES,
    ExpressionError,
    Puzzle,
    TaskConfig,
    heldout_puzzles,
    is_heldout,
    parse_expression,
    sample_puzzles,
    score,
    score_batch,
)
from maxpo.lab.tokenizer import CharTokenizer

P = Puzzle(numbers=(3, 7, 5), target=26, solution="3*7+5")


@pytest.mark.parametrize(
    "text, value",
    [
        ("3*7+5", 26),
        ("9-3-2", 4),  # left associative
        ("9-(3-2)", 8),
        ("2+3*4", 14),  # precedence
        ("(2+3)*4", 20),
        ("((7))", 7),
        ("12*10", 120),
    ],
)
def test_parse_evaluates_exactly(text: str, value: int) -> None:
    assert parse_expression(text)[0] == value


@pytest.mark.parametrize("text", ["", "3+", "+3", "3**4", "(3+4", "3+4)", "3/4", "03+4", "3 + 4", "-3+4", "3(4)", "x"])
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text)


def test_parse_reports_literals_in_order() -> None:
    assert parse_expression("(5+3)*7")[1] == [5, 3, 7]


def test_score_correct_any_order_of_numbers() -> None:
    for text in ("3*7+5", "5+7*3", "7*3+5", "(7*3)+5"):
        s = score(P, text)
        assert s.correct and s.partial == 1.0 and s.well_formed and s.value == 26


def test_score_partial_credit_is_one_minus_relative_error() -> None:
    s = score(P, "3*5+7")  # 22
    assert not s.correct and s.well_formed
    assert s.partial == pytest.approx(1 - 4 / 26)
    assert score(P, "3*7*5").partial == 0.0  # 105: relative error above 1, floored at 0
    assert score(P, "7+5-3").partial == pytest.approx(1 - 17 / 26)


def test_score_rejects_wrong_numbers() -> None:
    for text in ("3*7+6", "3*7", "3*7+5+5", "26", "3*7+5-0"):
        s = score(P, text)
        assert not s.correct and s.partial == 0.0 and not s.well_formed
    assert score(P, "garbage").value is None


def test_score_batch_checks_lengths() -> None:
    assert [s.correct for s in score_batch([P, P], ["3*7+5", "3"])] == [True, False]
    with pytest.raises(ValueError, match="2 puzzles but 1"):
        score_batch([P, P], ["3*7+5"])


@pytest.mark.parametrize("name", list(DIFFICULTIES))
def test_reference_solutions_verify(name: str) -> None:
    cfg = DIFFICULTIES[name]
    for p in sample_puzzles(cfg, 300, seed=1):
        assert score(p, p.solution).correct, p
        assert len(p.numbers) == cfg.n_numbers
        assert all(1 <= x <= cfg.max_number for x in p.numbers)
        assert 1 <= p.target <= cfg.max_target
        assert p.prompt == ",".join(map(str, p.numbers)) + f"|{p.target}="


def test_generation_is_deterministic() -> None:
    cfg = DIFFICULTIES["medium"]
    assert sample_puzzles(cfg, 50, seed=3) == sample_puzzles(cfg, 50, seed=3)
    assert sample_puzzles(cfg, 50, seed=3) != sample_puzzles(cfg, 50, seed=4)


def test_splits_are_disjoint_and_stable() -> None:
    cfg = DIFFICULTIES["medium"]
    train = {p.key for p in sample_puzzles(cfg, 2000, seed=0, split="train")}
    held = {p.key for p in sample_puzzles(cfg, 500, seed=0, split="heldout")}
    assert train and held and not train & held
    assert all(is_heldout(k, cfg.heldout_percent) for k in held)
    ev = heldout_puzzles(cfg, 100)
    assert len({p.key for p in ev}) == 100 and ev == heldout_puzzles(cfg, 100)


def test_heldout_share_close_to_config() -> None:
    cfg = TaskConfig(n_numbers=3, heldout_percent=30)
    keys = ({p.key for p in sample_puzzles(cfg, 1500, seed=0)}
            | {p.key for p in sample_puzzles(cfg, 1500, seed=0, split="heldout")})
    share = sum(is_heldout(k, 30) for k in keys) / len(keys)
    assert 0.2 < share < 0.4


def test_difficulty_knob_changes_the_task() -> None:
    hard = sample_puzzles(DIFFICULTIES["hard"], 50, seed=0)
    assert all(len(p.numbers) == 4 for p in hard)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_numbers": 1}, "n_numbers"), ({"max_number": 1}, "max_number"), ({"max_target": 0}, "max_target"),
     ({"heldout_percent": 0}, "heldout_percent")],
)
def test_bad_task_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TaskConfig(**kwargs)


def test_bad_split_and_too_small_heldout() -> None:
    with pytest.raises(ValueError, match="split"):
        sample_puzzles(DIFFICULTIES["medium"], 1, seed=0, split="test")
    with pytest.raises(ValueError, match="fewer than 500 distinct"):
        heldout_puzzles(DIFFICULTIES["easy"], 500)


def test_char_tokenizer_round_trip() -> None:
    tok = CharTokenizer()
    for p in sample_puzzles(DIFFICULTIES["hard"], 100, seed=2):
        for text in (p.prompt, p.solution):
            ids = tok.encode(text)
            assert len(ids) == len(text) and min(ids) >= 3
            assert tok.decode(ids) == text
    assert tok.decode([tok.BOS, *tok.encode("1+2"), tok.EOS, tok.PAD]) == "1+2"
    assert tok.vocab_size == len(set(tok.encode("0123456789+-*(),|="))) + 3
    with pytest.raises(ValueError, match="'/'"):
        tok.encode("1/2")


def test_puzzle_identities_by_hand_on_a_two_number_task():
    """Numbers 1..2, two of them: the 12 expressions a+b, a-b, a*b reach 6 identities with target >= 1."""
    from maxpo.lab.task import TaskConfig, puzzle_identities
    cfg = TaskConfig(n_numbers=2, max_number=2, max_target=9, heldout_percent=50, parentheses=True)
    by_hand = {((1, 1), 2), ((1, 1), 1), ((1, 2), 3), ((1, 2), 2), ((1, 2), 1), ((2, 2), 4)}
    train, held = puzzle_identities(cfg, "train"), puzzle_identities(cfg, "heldout")
    assert train | held == by_hand and not train & held


def test_puzzle_identities_is_what_exhaustive_drawing_finds():
    """The enumeration agrees with the random generator drawn until it stops finding new held-out puzzles."""
    from maxpo.lab.config import preset
    from maxpo.lab.task import heldout_puzzles, puzzle_identities
    cfg = preset("smoke").task
    ids = puzzle_identities(cfg)
    drawn = heldout_puzzles(cfg, len(ids))
    assert {p.key for p in drawn} == ids
    with pytest.raises(ValueError, match=f"found {len(ids)}"):
        heldout_puzzles(cfg, len(ids) + 1)
