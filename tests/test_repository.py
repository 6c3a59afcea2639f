"""The README's set-up commands are the ones CI runs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines()]


def test_readme_opens_with_the_figures_and_test_commands_and_ci_runs_the_latter():
    figures, tests = readme_commands()
    assert "meanfield figures" in figures
    assert "pip install" in figures
    assert "pytest" in tests
    assert ".[test]" in tests
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_docs_are_self_contained():
    """The repository never points outside itself, and every local link of the README exists."""
    import re

    texts = {path: path.read_text() for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                                                *(ROOT / "meanfield").rglob("*.py")]}
    for path, text in texts.items():
        assert "DESIGN" not in text, path
        assert "notes/performance" not in text, path
    for target in re.findall(r"\]\(([^)#:]+)\)", texts[ROOT / "README.md"]):
        assert (ROOT / target).exists(), target
