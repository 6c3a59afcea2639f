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
