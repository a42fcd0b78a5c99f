"""The folders are the layers, top to bottom; an import may only point down (or sideways between
the two side-by-side layers, handlers and schedules):

    bot/        what starts and connects the program (CLI, app, dispatcher, channel adapters)
    handlers/   the conversations          schedules/  the background work
    domain/     the rules, and what both of those share (message types, texts, the clock)
    storage/    tables, sessions, migrations

Every import counts, including those inside functions (they are still dependencies)."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANK = {"bot": 0, "handlers": 1, "schedules": 1, "domain": 2, "storage": 3}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def upward_imports() -> list[str]:
    problems: list[str] = []
    for package, rank in RANK.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for line, module in imported_modules(tree):
                target = module.split(".")[0]
                if target in RANK and RANK[target] < rank:
                    problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return problems


def test_every_import_points_down_the_layers() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk finds imports at module level and inside functions alike."""
    tree = ast.parse("import os\nfrom bot.app import run_bot\ndef f():\n    import handlers.menu\n")
    assert [m for _line, m in imported_modules(tree)] == ["os", "bot.app", "handlers.menu"]


def test_every_layer_is_a_package_that_gets_installed() -> None:
    """An editable install hides a package missing from pyproject or the Dockerfile."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in RANK:
        assert (ROOT / package / "__init__.py").exists(), package
        assert f'"{package}*"' in pyproject, f"{package} missing from pyproject's packages"
        assert f"COPY {package} ./{package}" in dockerfile, f"{package} missing from Dockerfile"


def test_the_built_wheel_holds_every_module_and_data_file(tmp_path: Path) -> None:
    """Build the wheel as `pip install .` (and the Dockerfile) would, and look inside."""
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("-w", str(tmp_path), str(ROOT)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("huiyin-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        path.relative_to(ROOT).as_posix()
        for package in RANK
        for path in (ROOT / package).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix in (".py", ".po", ".toml", ".mako", ".csv", ".md")
    }
    assert wanted - inside == set()
