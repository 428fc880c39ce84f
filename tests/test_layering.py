"""Data flows one way: training/ imports neither deploy/ nor har_app/ (nor bench/), and deploy/ does not import
har_app/ or bench/. Every import statement is checked, also those inside functions. And every exit code is a member
of training.errors.ExitCode: no HarError or CLI failure is given a bare number."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sources(package: str) -> list[Path]:
    # the bundle templates run on the board without har installed: not part of the package's code
    return [p for p in sorted((ROOT / package).rglob("*.py")) if "templates" not in p.relative_to(ROOT).parts]


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every module `path` imports (absolute imports; the repository has no relative
    ones), wherever the import statement is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in ("import_module",
                                                                                               "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value.split(".")[0])
    return names


@pytest.mark.parametrize("package, forbidden", [("training", {"deploy", "har_app", "bench"}),
                                                ("deploy", {"har_app", "bench"})])
def test_no_import_against_the_data_flow(package, forbidden):
    files = _sources(package)
    assert len(files) > 10
    offending = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & forbidden) for p in files}
    assert {name: pkgs for name, pkgs in offending.items() if pkgs} == {}


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import numpy\n\ndef f():\n    from deploy.compress import compress_run\n"
                      "    import har_app.cli as cli\n    return importlib.import_module('bench.compare')\n")
    assert imported_packages(source) == {"numpy", "deploy", "har_app", "bench"}


def numeric_exit_codes(path: Path) -> list[int]:
    """Lines where a HarError (or `fail`, the CLI's one-line error) gets its exit code as a number or a local
    constant instead of an `ExitCode.MEMBER` (or a code passed through, like `exc.exit_code`)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("HarError", "fail"):
            code = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords
                                                                  if k.arg in ("exit_code", "code")), None)
            if isinstance(code, (ast.Constant, ast.Name)):
                lines.append(node.lineno)
    return lines


def test_exit_codes_are_members_of_the_enum():
    files = [p for package in ("training", "deploy", "har_app", "bench") for p in _sources(package)]
    numeric = {str(p.relative_to(ROOT)): numeric_exit_codes(p) for p in files}
    numeric = {name: lines for name, lines in numeric.items() if lines}
    assert not numeric, numeric


def test_the_exit_code_checker_sees_numbers(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("raise HarError('x', 3)\nraise HarError('x', ExitCode.DOMAIN)\nraise HarError('y', exit_code=2)\n"
                      "raise HarError('z', DOES_NOT_FIT)\nraise fail(str(exc), exc.exit_code)\n")
    assert numeric_exit_codes(source) == [1, 3, 4]
