"""The house rules of the repository (issue 13), checked on its sources.

Every service has the same skeleton; no module under ``services/`` grows past the size a
reader takes in at once; the repository's own modules import each other without a cycle;
the service layer takes what it needs as arguments instead of reaching for the request's
dependencies; every raise site names its problem type by its class.

The rules read the repository pytest runs in (its root directory), so the same file
checks any checkout: ``pytest --rootdir <checkout> -c <checkout>/pyproject.toml <file>``.
Each failure lists every offender, not only the first.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

SKELETON = ("__main__.py", "main.py", "config.py", "runtime.py", "deps.py", "errors.py")
MAX_MODULE_LINES = 420
"""About 400 lines, the issue says; the rule allows a little slack above that."""


@pytest.fixture(scope="module")
def repo(pytestconfig: pytest.Config) -> Path:
    root = pytestconfig.rootpath
    assert (root / "services").is_dir(), f"{root} is not the repository (no services/)"
    return root


def service_packages(repo: Path) -> dict[str, Path]:
    """``auth`` -> ``services/auth/src/hds_auth``, for every service."""
    return {
        src.parent.name: package
        for src in sorted(repo.glob("services/*/src"))
        for package in sorted(src.glob("hds_*"))
        if (package / "__init__.py").is_file()
    }


def source_roots(repo: Path) -> dict[str, Path]:
    """Every top-level package of the repository's own code and the folder it is in:
    the services, hds_common and the clients (where there are any)."""
    roots: dict[str, Path] = {}
    for src in [
        repo / "libs/common/src",
        *sorted(repo.glob("services/*/src")),
        *sorted(repo.glob("clients/*/src")),
    ]:
        for package in sorted(src.iterdir()):
            if (package / "__init__.py").is_file():
                roots[package.name] = src
    return roots


def modules(package: Path) -> Iterator[Path]:
    """The Python modules of a service package, its migrations aside."""
    for path in sorted(package.rglob("*.py")):
        if "migrations" not in path.relative_to(package).parts:
            yield path


def refuse(rule: str, offenders: list[str]) -> None:
    """Fail naming the rule and every offender, one a line."""
    if offenders:
        pytest.fail(
            f"{rule}: {len(offenders)} offender(s)\n  " + "\n  ".join(offenders), pytrace=False
        )


# (a) ------------------------------------------------------------------------------------


def test_every_service_has_the_skeleton(repo: Path) -> None:
    packages = service_packages(repo)
    assert packages, "no service packages found under services/*/src"
    offenders = [
        f"{package.relative_to(repo)}: missing {', '.join(missing)}"
        for package in packages.values()
        if (missing := [name for name in SKELETON if not (package / name).is_file()])
    ]
    refuse(f"every service package has {', '.join(SKELETON)}", offenders)


# (b) ------------------------------------------------------------------------------------


def test_no_module_under_services_is_too_long(repo: Path) -> None:
    offenders = [
        f"{path.relative_to(repo)}: {lines} lines"
        for package in service_packages(repo).values()
        for path in modules(package)
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    refuse(
        f"no module under services/*/src above {MAX_MODULE_LINES} lines (migrations aside)",
        offenders,
    )


# (c) ------------------------------------------------------------------------------------

# grimp (the graph import-linter is built on) reads the imports of the given packages; the
# strongly connected components of that graph with more than one module are the cycles.
# It runs in a child process whose path starts with the repository's source folders, so
# it reads this checkout's files whichever checkout the environment was installed from.
# Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they close no
# cycle at import time. Imports inside functions count: they are cycles all the same,
# only deferred.
_FIND_CYCLES = textwrap.dedent(
    """
    import json, sys
    import grimp

    graph = grimp.build_graph(*sys.argv[1:], cache_dir=None, exclude_type_checking_imports=True)
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(root):
        # Tarjan's algorithm, iterative: deep import chains need no recursion limit.
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    imported = graph.find_modules_directly_imported_by(successor)
                    work.append((successor, iter(sorted(imported))))
                    break
                if successor in on_stack:
                    low[module] = min(low[module], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)

    cycles = []
    for component in components:
        members = set(component)
        imports = []
        for importer in component:
            for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
                details = graph.get_import_details(importer=importer, imported=imported)
                line = min((d["line_number"] for d in details), default=0)
                imports.append(f"{importer}:{line} imports {imported}")
        cycles.append({"modules": component, "imports": imports})
    print(json.dumps(cycles))
    """
)


def import_cycles(roots: dict[str, Path], cwd: Path) -> list[dict[str, list[str]]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(str(src) for src in roots.values())),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", _FIND_CYCLES, *sorted(roots)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cycles: list[dict[str, list[str]]] = json.loads(result.stdout)
    return cycles


def test_the_repository_has_no_import_cycle(repo: Path, tmp_path: Path) -> None:
    roots = source_roots(repo)
    assert {"hds_common", *(f"hds_{name}" for name in service_packages(repo))} <= set(roots)
    cycles = import_cycles(roots, tmp_path)
    offenders = [
        f"{' <-> '.join(cycle['modules'])}\n    " + "\n    ".join(cycle["imports"])
        for cycle in cycles
    ]
    refuse("no import cycle among the repository's modules", offenders)


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check above would pass on a graph it failed to read; this one must not."""
    package = tmp_path / "src" / "hds_cyclic"
    (package / "feature").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "feature" / "__init__.py").write_text("")
    (package / "feature" / "service.py").write_text("from hds_cyclic import runtime\n")
    (package / "runtime.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from hds_cyclic.feature import service\n"
        "if TYPE_CHECKING:\n"
        "    from hds_cyclic import config\n"
    )
    (package / "config.py").write_text("from hds_cyclic import runtime\n")
    cycles = import_cycles({"hds_cyclic": tmp_path / "src"}, tmp_path)
    assert [cycle["modules"] for cycle in cycles] == [
        ["hds_cyclic.feature.service", "hds_cyclic.runtime"]
    ]
    assert cycles[0]["imports"] == [
        "hds_cyclic.feature.service:1 imports hds_cyclic.runtime",
        "hds_cyclic.runtime:2 imports hds_cyclic.feature.service",
    ]


# (d) ------------------------------------------------------------------------------------

# The request's dependencies are wired in deps.py, used by main.py and the routers; the
# service layer below them takes what it needs as arguments.
_MAY_IMPORT_DEPS = ("deps.py", "main.py", "router.py")


def _imported_modules(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Every module an import statement of ``module`` names, relative ones resolved;
    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names)


def _module_name(path: Path, src: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def deps_offenders(repo: Path) -> list[str]:
    offenders = []
    for package in service_packages(repo).values():
        deps = f"{package.name}.deps"
        for path in modules(package):
            if path.name in _MAY_IMPORT_DEPS:
                continue
            module, is_package = _module_name(path, package.parent)
            tree = ast.parse(path.read_text(), str(path))
            if deps in set(_imported_modules(tree, module, is_package)):
                offenders.append(f"{path.relative_to(repo)} imports {deps}")
    return offenders


def test_the_service_layer_never_imports_deps(repo: Path) -> None:
    refuse(
        "only deps.py, main.py and */router.py import the service's deps.py",
        deps_offenders(repo),
    )


def depends_offenders(repo: Path) -> list[str]:
    offenders = []
    for package in service_packages(repo).values():
        for path in modules(package):
            inside = path.relative_to(package).with_suffix("").parts
            if not {"service", "repository"} & set(inside):
                continue
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    uses = (node.module or "").startswith("fastapi") and any(
                        alias.name in ("Depends", "Security") for alias in node.names
                    )
                elif isinstance(node, ast.Attribute):
                    uses = (
                        node.attr in ("Depends", "Security")
                        and isinstance(node.value, ast.Name)
                        and node.value.id == "fastapi"
                    )
                else:
                    continue
                if uses:
                    offenders.append(
                        f"{path.relative_to(repo)}:{node.lineno} uses fastapi's Depends"
                    )
    return offenders


def test_services_and_repositories_do_not_use_fastapi_depends(repo: Path) -> None:
    refuse(
        "service and repository modules take arguments, not fastapi's Depends",
        depends_offenders(repo),
    )


# (e) ------------------------------------------------------------------------------------


def _problem_classes(repo: Path) -> set[str]:
    """The names of ProblemError and every class deriving from it, in hds_common and the
    services (by name: a subclass of a subclass counts)."""
    bases: dict[str, set[str]] = {}
    for path in [
        *(repo / "libs/common/src").rglob("*.py"),
        *(repo / "services").glob("*/src/**/*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases.setdefault(node.name, set()).update(
                    base.id if isinstance(base, ast.Name) else base.attr
                    for base in node.bases
                    if isinstance(base, ast.Name | ast.Attribute)
                )
    problems = {"ProblemError"}
    while grown := {name for name, of in bases.items() if of & problems} - problems:
        problems |= grown
    return problems


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def slug_offenders(repo: Path) -> list[str]:
    problems = _problem_classes(repo)
    found: set[tuple[str, int, str | None, tuple[str, ...]]] = set()
    for path in sorted((repo / "services").glob("*/src/**/*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for klass in [None, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]:
            body = klass.body if klass is not None else tree.body
            in_problem = klass is not None and klass.name in problems
            for statement in body:
                if klass is None and isinstance(statement, ast.ClassDef):
                    continue  # walked as its own class
                for node in ast.walk(statement):
                    if not isinstance(node, ast.Call):
                        continue
                    callee = _callee(node)
                    # super().__init__(slug=...) inside a problem class passes it too
                    calls_problem = callee in problems or (
                        in_problem
                        and callee == "__init__"
                        and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Call)
                        and _callee(node.func.value) == "super"
                    )
                    given = sorted(k.arg for k in node.keywords if k.arg in ("slug", "title"))
                    if calls_problem and given:
                        found.add((str(path.relative_to(repo)), node.lineno, callee, tuple(given)))
    return [
        f"{path}:{line} {callee}({', '.join(f'{name}=...' for name in given)})"
        for path, line, callee, given in sorted(found)
    ]


def test_no_raise_site_gives_a_slug_or_title(repo: Path) -> None:
    assert {"ProblemError", "NotFound", "MissingToken"} <= _problem_classes(repo)
    refuse(
        "problem classes carry their slug and title; no slug= or title= at a call",
        slug_offenders(repo),
    )


def test_the_checks_of_the_service_layer_find_their_offenders(tmp_path: Path) -> None:
    """The three checks above on a made-up service that breaks each rule once, beside
    the same code written as the rules want it."""
    common = tmp_path / "libs/common/src/hds_common"
    common.mkdir(parents=True)
    (common / "__init__.py").write_text("")
    (common / "errors.py").write_text(
        "class ProblemError(Exception): ...\nclass Conflict(ProblemError): ...\n"
    )
    package = tmp_path / "services/example/src/hds_example"
    (package / "feature").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "deps.py": "from fastapi import Depends\n",
        "main.py": "from hds_example.deps import RuntimeDep\n",
        "errors.py": (
            "from hds_common import errors\n"
            "class Taken(errors.Conflict):\n"
            "    slug = 'taken'\n"
            "class Legacy(Taken):\n"
            "    def __init__(self) -> None:\n"
            "        super().__init__('old', slug='legacy')\n"
        ),
        "feature/__init__.py": "",
        "feature/router.py": "from ..deps import RuntimeDep\nfrom . import service\n",
        "feature/service.py": (
            "from fastapi import Depends\n"
            "from .. import deps\n"
            "from hds_example.errors import Taken\n"
            "def check(taken: bool) -> None:\n"
            "    if taken:\n"
            "        raise Taken('detail', title='Taken')\n"
            "    raise Taken('detail')\n"
        ),
        "feature/repository.py": "import fastapi\nSession = fastapi.Depends()\n",
        "feature/schemas.py": "from hds_example.deps import RuntimeDep\n",
        "app.py": "from fastapi import FastAPI\napp = FastAPI(title='not a problem')\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    assert deps_offenders(tmp_path) == [
        "services/example/src/hds_example/feature/schemas.py imports hds_example.deps",
        "services/example/src/hds_example/feature/service.py imports hds_example.deps",
    ]
    assert depends_offenders(tmp_path) == [
        "services/example/src/hds_example/feature/repository.py:2 uses fastapi's Depends",
        "services/example/src/hds_example/feature/service.py:1 uses fastapi's Depends",
    ]
    assert slug_offenders(tmp_path) == [
        "services/example/src/hds_example/errors.py:6 __init__(slug=...)",
        "services/example/src/hds_example/feature/service.py:6 Taken(title=...)",
    ]


# Item 8 ---------------------------------------------------------------------------------

_MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home|Users|tmp|mnt)/[\w.-]")
_TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg", ".ini", ".sh", ".txt"}
_NOT_THE_REPOSITORY = {".git", ".venv", ".tools", "var", "node_modules"}


def test_no_absolute_path_of_a_machine(repo: Path) -> None:
    """A fresh clone anywhere runs as the original: no file names a folder of the machine
    it was written on (the tests use their tmp_path, the code paths relative to its own
    files or its settings)."""
    offenders = []
    for path in sorted(repo.rglob("*")):
        inside = path.relative_to(repo).parts
        if any(part in _NOT_THE_REPOSITORY or part.endswith("_cache") for part in inside):
            continue
        if not path.is_file() or (path.suffix not in _TEXT_SUFFIXES and path.name != "Makefile"):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(repo)}:{number}: {line.strip()[:100]}")
    refuse("no absolute path of a machine in the repository", offenders)
