"""The README's set-up commands are the ones CI runs."""
from pathlib import Path

import pytest

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


def test_a_wheel_installs_into_a_fresh_environment_and_runs(tmp_path):
    """A non-editable install finds every subpackage: the wheel, installed into a new virtual
    environment (the numerical stack from the system's), runs a simulation and the command from
    outside the checkout (kernels as Python, NUMBA_DISABLE_JIT=1: this checks the packaging)."""
    import os
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    *map(str, (tmp_path / "dist").glob("meanfield-*.whl"))], check=True, capture_output=True)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    code = ("import meanfield as mf; cfg = mf.Config(network={'m': 4, 'd': 2}, data={'n': 5}, "
            "flow={'dt': 0.1, 't_end': 0.2}, record={'n_records': 2}); r = mf.simulate(cfg); "
            "print(r.status, mf.__file__)")
    run = subprocess.run([str(python), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    status, where = run.stdout.split()
    assert status == "completed"
    assert where.startswith(str(venv)), where
    (tmp_path / "c.toml").write_text("[network]\nm = 4\nd = 2\n[flow]\ndt = 0.1\nt_end = 0.2\n")
    command = subprocess.run([str(venv / "bin" / "meanfield"), "run", "c.toml", "--out", "out", "--no-progress"],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert command.returncode == 0, command.stderr
    assert "completed" in command.stdout


LAYERS = {"errors": 0, "_lazy": 0, "_kernels": 0, "_aliases": 0, "config": 2, "rules": 2, "model": 3, "store": 4,
          "engine": 5, "analysis": 6, "theory": 7, "tools": 8, "__init__": 9, "__main__": 9}
# registries of model/ that the config validates against: they import only the root's leaves
LEAVES = {"model.activations", "model.integrators", "model.energy", "model.parameterizations", "model.scaling",
          "model.diagnostics"}


def _module_imports(path):
    """(module name, the meanfield modules it imports, at any depth of its code)."""
    import ast

    package = ROOT / "meanfield"
    parts = path.relative_to(package).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
    here = list(parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                full = target + [alias.name]
                found.add(".".join(full if (package / Path(*full)).with_suffix(".py").exists() else target))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("meanfield."):
            found.add(node.module[len("meanfield."):])
        elif isinstance(node, ast.Import):
            found |= {a.name[len("meanfield."):] for a in node.names if a.name.startswith("meanfield.")}
    return name, {f for f in found if f}


def _layer(module: str) -> int:
    return 1 if module in LEAVES else LAYERS[module.split(".")[0]]


def test_imports_only_go_down_the_layers():
    """model < store < engine < analysis < theory < tools, with the root's errors, _kernels and
    config below them all (and model's registries, which the config reads, below the config)."""
    upward = [(name, dep) for path in sorted((ROOT / "meanfield").rglob("*.py"))
              for name, deps in [_module_imports(path)] for dep in deps if _layer(dep) > _layer(name)]
    assert upward == []


def test_old_module_paths_reach_the_new_ones_with_a_warning_and_the_package_never_uses_them():
    import importlib
    import subprocess
    import sys
    import warnings

    import meanfield
    from meanfield import _aliases

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("meanfield.controller")
        from meanfield import ntk
        from meanfield.model import predict
    assert old is importlib.import_module("meanfield.engine.controller")
    assert ntk is importlib.import_module("meanfield.model.ntk")
    assert predict is importlib.import_module("meanfield.model.twolayer").predict
    assert [str(w.message).split(";")[0] for w in caught] == [
        "meanfield.controller moved to meanfield.engine.controller", "meanfield.ntk moved to meanfield.model.ntk",
        "meanfield.model.predict moved to meanfield.model.twolayer.predict"]
    help_text = subprocess.run([sys.executable, "-m", "meanfield.cli", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0
    assert "usage: meanfield" in help_text.stdout
    for path in (ROOT / "meanfield").rglob("*.py"):
        for dep in _module_imports(path)[1]:
            assert dep.split(".")[0] not in _aliases.MOVED, (path, dep)
    assert all((ROOT / "meanfield" / f"{new.replace('.', '/')}.py").exists() for new in _aliases.MOVED.values())
    assert meanfield.simulate is importlib.import_module("meanfield.engine.controller").simulate


def test_the_code_passes_the_linter():
    """ruff with the project's rules (pyproject.toml: lines of at most 120 characters, pyflakes,
    sorted imports) over the package, the tests and the scenarios."""
    import subprocess
    import sys

    pytest.importorskip("ruff")
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "meanfield", "tests", "scenarios"], cwd=ROOT,
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_readme_layout_names_every_module_and_folder():
    """The README's layout section keeps up with the package (it once omitted 7 of 45 modules)."""
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    for path in (ROOT / "meanfield").rglob("*.py"):
        if path.stem in ("__init__", "__main__", "_lazy", "_aliases"):
            continue
        assert f"`{path.stem}`" in layout, path
    for folder in ("model", "store", "engine", "analysis", "theory", "tools"):
        assert f"`{folder}/`" in layout, folder
