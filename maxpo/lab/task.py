"""Countdown puzzles: the lab's verifiable task.

A puzzle gives ``n`` small numbers and a target ``T``; the answer is an
arithmetic expression that uses each given number exactly once, the operators
``+ - *`` and parentheses, and evaluates to ``T``. As text::

    prompt      "3,7,5|26="
    completion  "3*7+5"

Why this task: it is verified exactly (a tiny parser, no ``eval``), most puzzles
have several solutions, so a policy that keeps trying different expressions
solves more of them in K tries than in one (pass@K and pass@1 differ), and its
difficulty has two natural knobs, the count of numbers and their size.

Rewards (both exact, both tested):

* binary:  1 if the expression is well formed, uses exactly the given numbers
  (as a multiset) and equals ``T``; else 0.
* partial: 1 for a correct answer; for a well-formed answer that uses exactly the
  given numbers but misses, ``max(0, 1 - |v - T| / T)`` (one minus the relative
  error, always below 1 since ``|v - T| >= 1``); 0 for anything else. This is the
  continuous reward of the max@K experiments.

Train and held-out puzzles are told apart by a stable hash of the puzzle's
identity (the sorted numbers and the target), so no held-out puzzle is ever seen
in training, whatever order its numbers are shown in.
"""
from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import cast

__all__ = [
    "TaskConfig",
    "Puzzle",
    "Score",
    "DIFFICULTIES",
    "ALPHABET",
    "ExpressionError",
    "parse_expression",
    "score",
    "score_batch",
    "is_heldout",
    "sample_puzzles",
    "heldout_puzzles",
    "puzzle_identities",
]

#: Every character a prompt or a reference answer can contain.
ALPHABET = "0123456789+-*(),|="
_OPS = ("+", "-", "*")
_PREC = {"+": 1, "-": 1, "*": 2}
#: Longest completion the verifier will parse (anything longer scores 0).
MAX_ANSWER_CHARS = 64


@dataclass(frozen=True)
class TaskConfig:
    """The difficulty knobs of the countdown task.

    Attributes:
        n_numbers: how many numbers a puzzle gives (2 to 6); each must be used once.
        max_number: numbers are drawn uniformly from ``1..max_number``.
        max_target: targets lie in ``1..max_target`` (puzzles whose generating
            expression leaves this range are redrawn).
        heldout_percent: share of puzzle identities (sorted numbers, target)
            reserved for evaluation, in percent.
        parentheses: whether generated reference answers may use parentheses
            (the verifier always accepts them).
    """

    n_numbers: int = 3
    max_number: int = 9
    max_target: int = 99
    heldout_percent: int = 20
    parentheses: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.n_numbers <= 6:
            raise ValueError(f"n_numbers must be between 2 and 6, got {self.n_numbers}")
        if not 2 <= self.max_number <= 999:
            raise ValueError(f"max_number must be between 2 and 999, got {self.max_number}")
        if self.max_target < 1:
            raise ValueError(f"max_target must be at least 1, got {self.max_target}")
        if not 1 <= self.heldout_percent <= 99:
            raise ValueError(f"heldout_percent must be between 1 and 99, got {self.heldout_percent}")

    def to_dict(self) -> dict:
        return asdict(self)


#: Named settings of the difficulty knob.
DIFFICULTIES: dict[str, TaskConfig] = {
    "easy": TaskConfig(n_numbers=2, max_number=9, max_target=81),
    "medium": TaskConfig(n_numbers=3, max_number=9, max_target=99),
    "hard": TaskConfig(n_numbers=4, max_number=9, max_target=99),
}


@dataclass(frozen=True)
class Puzzle:
    """One puzzle: the numbers in the order shown, the target, and one solution."""

    numbers: tuple[int, ...]
    target: int
    solution: str

    @property
    def prompt(self) -> str:
        """The prompt text, e.g. ``"3,7,5|26="``."""
        return ",".join(str(x) for x in self.numbers) + "|" + str(self.target) + "="

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        """The puzzle's identity: sorted numbers and target."""
        return tuple(sorted(self.numbers)), self.target


@dataclass(frozen=True)
class Score:
    """The verifier's verdict on one completion."""

    correct: bool
    partial: float
    well_formed: bool
    value: int | None


class ExpressionError(ValueError):
    """A completion that is not a well-formed expression."""


# --------------------------------------------------------------------------- parsing
def parse_expression(text: str) -> tuple[int, list[int]]:
    """Parse and evaluate an expression over ``+ - *``, parentheses and decimal literals.

    Grammar: ``expr := term (('+'|'-') term)*``, ``term := factor ('*' factor)*``,
    ``factor := number | '(' expr ')'``; numbers have no sign and no leading zero.
    Evaluation is exact (Python integers).

    Returns:
        ``(value, literals)``: the value and the number literals in reading order.

    Raises:
        ExpressionError: on any character, token order or nesting that the grammar
            does not allow, with the position of the problem.
    """
    if not text:
        raise ExpressionError("empty expression")
    if len(text) > MAX_ANSWER_CHARS:
        raise ExpressionError(f"expression longer than {MAX_ANSWER_CHARS} characters")
    pos = 0
    literals: list[int] = []

    def peek() -> str:
        return text[pos] if pos < len(text) else ""

    def factor(depth: int) -> int:
        nonlocal pos
        ch = peek()
        if ch == "(":
            if depth > 16:
                raise ExpressionError("parentheses nested too deeply")
            pos += 1
            value = expr(depth + 1)
            if peek() != ")":
                raise ExpressionError(f"expected ')' at position {pos}")
            pos += 1
            return value
        if ch.isdigit() and ch in "0123456789":
            start = pos
            while peek() and peek() in "0123456789":
                pos += 1
            lit = text[start:pos]
            if len(lit) > 1 and lit[0] == "0":
                raise ExpressionError(f"number with a leading zero at position {start}")
            literals.append(int(lit))
            return int(lit)
        raise ExpressionError(f"expected a number or '(' at position {pos}, got {ch!r}")

    def term(depth: int) -> int:
        nonlocal pos
        value = factor(depth)
        while peek() == "*":
            pos += 1
            value *= factor(depth)
        return value

    def expr(depth: int) -> int:
        nonlocal pos
        value = term(depth)
        while peek() in ("+", "-") and peek():
            op = text[pos]
            pos += 1
            rhs = term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    value = expr(0)
    if pos != len(text):
        raise ExpressionError(f"unexpected {text[pos]!r} at position {pos}")
    return value, literals


def score(puzzle: Puzzle, completion: str) -> Score:
    """Verify one completion against a puzzle (see the module docstring for the rewards)."""
    try:
        value, literals = parse_expression(completion)
    except ExpressionError:
        return Score(False, 0.0, False, None)
    if sorted(literals) != sorted(puzzle.numbers):
        return Score(False, 0.0, False, value)
    if value == puzzle.target:
        return Score(True, 1.0, True, value)
    partial = max(0.0, 1.0 - abs(value - puzzle.target) / puzzle.target)
    return Score(False, partial, True, value)


# --------------------------------------------------------------------------- generation
def is_heldout(key: tuple[tuple[int, ...], int], heldout_percent: int) -> bool:
    """Whether a puzzle identity belongs to the held-out split (stable across runs and machines)."""
    numbers, target = key
    digest = hashlib.sha256(f"{','.join(map(str, numbers))}|{target}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < heldout_percent


def _render(node: object, parent_op: str | None = None, right: bool = False) -> str:
    if isinstance(node, int):
        return str(node)
    op, left, rgt = cast(tuple[str, object, object], node)
    text = f"{_render(left, op, False)}{op}{_render(rgt, op, True)}"
    if parent_op is not None:
        needs = _PREC[op] < _PREC[parent_op] or (right and parent_op == "-" and _PREC[op] == 1)
        if needs:
            text = f"({text})"
    return text


def _random_tree(rng: random.Random, numbers: list[int], parentheses: bool) -> object:
    """A random binary expression tree over ``numbers`` in the given order."""
    if len(numbers) == 1:
        return numbers[0]
    if parentheses:
        split = rng.randint(1, len(numbers) - 1)
    else:
        split = len(numbers) - 1  # left-deep; rendering may still need none
    op = rng.choice(_OPS)
    return (op, _random_tree(rng, numbers[:split], parentheses), _random_tree(rng, numbers[split:], parentheses))


def _evaluate_tree(node: object) -> int:
    if isinstance(node, int):
        return node
    op, left, right = cast(tuple[str, object, object], node)
    a, b = _evaluate_tree(left), _evaluate_tree(right)
    return a + b if op == "+" else a - b if op == "-" else a * b


def _draw(rng: random.Random, cfg: TaskConfig, heldout: bool) -> Puzzle:
    for _ in range(10_000):
        numbers = [rng.randint(1, cfg.max_number) for _ in range(cfg.n_numbers)]
        order = numbers[:]
        rng.shuffle(order)
        tree = _random_tree(rng, order, cfg.parentheses)
        target = _evaluate_tree(tree)
        if not 1 <= target <= cfg.max_target:
            continue
        text = _render(tree)
        if not cfg.parentheses and "(" in text:
            continue
        puzzle = Puzzle(tuple(numbers), target, text)
        if is_heldout(puzzle.key, cfg.heldout_percent) == heldout:
            return puzzle
    raise RuntimeError(f"could not draw a puzzle for {cfg} in 10000 tries: is max_target too small?")


def sample_puzzles(cfg: TaskConfig, n: int, seed: int, split: str = "train") -> list[Puzzle]:
    """Draw ``n`` puzzles of one split (``"train"`` or ``"heldout"``), deterministically from ``seed``.

    Puzzles are drawn by picking numbers uniformly, a random expression tree over
    them and keeping the result if the target lies in ``1..max_target``; the
    generating expression is kept as the reference solution (for the warm start).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    return [_draw(rng, cfg, split == "heldout") for _ in range(n)]


def heldout_puzzles(cfg: TaskConfig, n: int, seed: int = 12345) -> list[Puzzle]:
    """``n`` distinct held-out puzzles (distinct identities), fixed by ``seed``: the evaluation set."""
    rng = random.Random(seed)
    seen: set[tuple[tuple[int, ...], int]] = set()
    out: list[Puzzle] = []
    misses = 0  # draws since the last new puzzle: 20000 in a row means the split is exhausted
    while len(out) < n:
        if misses > 20_000:
            raise ValueError(f"the held-out split of {cfg} has fewer than {n} distinct puzzles (found {len(out)})")
        p = _draw(rng, cfg, True)
        if p.key in seen:
            misses += 1
        else:
            seen.add(p.key)
            out.append(p)
            misses = 0
    return out


def _all_trees(numbers: tuple[int, ...], parentheses: bool) -> Iterator[object]:
    """Every expression tree :func:`_random_tree` can build over ``numbers`` in this order."""
    if len(numbers) == 1:
        yield numbers[0]
        return
    splits = range(1, len(numbers)) if parentheses else [len(numbers) - 1]
    for split in splits:
        for op in _OPS:
            for left in _all_trees(numbers[:split], parentheses):
                for right in _all_trees(numbers[split:], parentheses):
                    yield (op, left, right)


def puzzle_identities(cfg: TaskConfig, split: str = "heldout") -> set[tuple[tuple[int, ...], int]]:
    """Every puzzle identity (sorted numbers, target) of one split, by exhaustive enumeration.

    The same generator as :func:`sample_puzzles`, walked completely: every ordered
    choice of ``n_numbers`` numbers in ``1..max_number``, every expression tree over
    them, every operator; kept when the target lies in ``1..max_target`` (and, without
    parentheses, when the expression needs none). ``len(puzzle_identities(cfg))`` is
    the most distinct puzzles an evaluation can use (:func:`heldout_puzzles`).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    keys: set[tuple[tuple[int, ...], int]] = set()
    for numbers in itertools.product(range(1, cfg.max_number + 1), repeat=cfg.n_numbers):
        for tree in _all_trees(numbers, cfg.parentheses):
            target = _evaluate_tree(tree)
            if not 1 <= target <= cfg.max_target:
                continue
            if not cfg.parentheses and "(" in _render(tree):
                continue
            key = (tuple(sorted(numbers)), target)
            if is_heldout(key, cfg.heldout_percent) == (split == "heldout"):
                keys.add(key)
    return keys


def score_batch(puzzles: Sequence[Puzzle], completions: Sequence[str]) -> list[Score]:
    """Verify completion ``i`` against puzzle ``i`` for every ``i``."""
    if len(puzzles) != len(completions):
        raise ValueError(f"{len(puzzles)} puzzles but {len(completions)} completions")
    return [score(p, c) for p, c in zip(puzzles, completions)]
