"""Every page of the API reference has a usage example, and every example runs as written (doctest)."""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "book" / "api"
PAGES = sorted(API.glob("*.md"))
BLOCK = re.compile(r"```pycon\n(.*?)```", re.S)


def test_every_api_page_is_covered() -> None:
    assert {p.name for p in PAGES} >= {"index.md", "advantages.md", "maxk_estimate.md", "passk_estimate.md",
                                       "methods.md", "reference.md", "lab.md", "integrations.md"}


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_api_page_example_runs(page: Path) -> None:
    blocks = BLOCK.findall(page.read_text())
    assert blocks, f"{page.name} has no ```pycon usage example"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for n, block in enumerate(blocks):
        test = parser.get_doctest(block, {}, f"{page.stem}[{n}]", str(page), 0)
        assert test.examples, f"{page.name}: block {n} has no >>> lines"
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0, f"{page.name}: {result}"
