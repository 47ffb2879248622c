"""The documentation: the README's size, links that lead somewhere, and examples that run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_readme_stays_within_15000_characters() -> None:
    assert len(README.read_text()) <= 15_000


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_and_backquoted_path_names_a_file_that_exists(page: Path) -> None:
    text = page.read_text()
    targets = [
        link.split("#")[0]
        for link in re.findall(r"\]\(([^)\s]+)\)", text)
        if not re.match(r"[a-z]+://|#", link)
    ]
    missing = [t for t in targets if not (page.parent / t).exists()]
    # Paths of the repository written in backquotes: `dqn_agent/learner.py`, `docs/...`.
    quoted = re.findall(
        r"`((?:dqn_agent|sweeps|analysis|docker|benchmarks|docs|tests)/[\w./-]+)`", text
    )
    missing += [q for q in quoted if "<" not in q and not (ROOT / q).exists()]
    assert not missing, f"{page.name} points to files that do not exist: {missing}"


def test_no_page_points_outside_the_repository() -> None:
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, page.name


def test_the_readmes_examples_run_and_a_custom_network_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's two Python examples, run in order at a budget of 600 env steps."""
    torch.set_num_threads(1)
    blocks = _python_blocks(README.read_text())
    assert len(blocks) == 2 and "network=layer_norm_mlp" in blocks[1]
    code = "\n".join(blocks).replace("env_steps=50_000", "env_steps=600")
    assert "env_steps=600" in code
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert "agents.1.weight" in result.state_dict  # type: ignore[attr-defined]
    assert len(result.evals) >= 2  # type: ignore[attr-defined]
    assert os.path.getsize(tmp_path / "cartpole.pt") > 0


def test_no_docstring_cites_a_document_the_repository_does_not_hold() -> None:
    sources = [
        p
        for d in ("dqn_agent", "sweeps", "analysis", "benchmarks")
        for p in (ROOT / d).rglob("*.py")
    ]
    cited = {
        (source.name, doc)
        for source in sources
        for doc in re.findall(r"\b(docs/[\w-]+\.md|[A-Z]+\.md)\b", source.read_text())
    }
    assert cited  # the pattern finds the citations that exist
    missing = sorted(
        (name, doc)
        for name, doc in cited
        if not (ROOT / doc).exists() and not doc.startswith("benchmarks")
    )
    assert not missing
