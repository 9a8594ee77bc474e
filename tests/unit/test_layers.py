"""The layers, as the imports show them: rules below Redis and HTTP, tasks above workers.

Every import counts, at module level or in a function, except those under
``if TYPE_CHECKING:``. A module may import its own layer and the ones below it; the two
adapters (LinkedIn, Redis state) do not import each other; the sandbox stands alone.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jobops", "tasks", "workers", "settings", "sandbox")

#: Highest first. The front door (``jobops`` itself), the command line and the
#: development tools sit on top of everything.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("front", ("jobops", "jobops.cli", "jobops.dev")),
    ("tasks", ("tasks",)),
    ("workers", ("workers",)),
    ("settings", ("settings",)),
    ("linkedin", ("jobops.linkedin",)),
    ("state", ("jobops.state",)),
    ("core", ("jobops.core",)),
]
#: Same rank: neither may import the other.
SIBLINGS = {"linkedin": "state", "state": "linkedin"}
RANK = {"front": 0, "tasks": 1, "workers": 2, "settings": 3, "linkedin": 4, "state": 4,
        "core": 5}

#: What each layer may take from outside the project, beyond the standard library.
THIRD_PARTY = {
    "core": set(),
    "linkedin": {"requests"},
    "state": {"redis", "kombu"},
    "settings": {"pydantic", "pydantic_settings"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def layer_of(module: str) -> str | None:
    if module == "sandbox" or module.startswith("sandbox."):
        return "sandbox"
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module ``module`` imports (project modules resolved to the submodule)."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return frozenset(found)


def _top(module: str) -> str:
    return module.split(".")[0]


def violations(modules: Iterable[str] = MODULES,
               imports: Callable[[str], frozenset[str]] = imports_of) -> list[str]:
    problems = []
    for module in sorted(modules):
        own = layer_of(module)
        for imported in sorted(imports(module)):
            if imported in MODULES or _top(imported) in PACKAGES:
                problems += _project_import(module, own, imported)
            elif own in THIRD_PARTY and _top(imported) not in sys.stdlib_module_names \
                    and _top(imported) not in THIRD_PARTY[own]:
                problems.append(f"{module} ({own}) imports {imported}")
    return problems


def _project_import(module: str, own: str | None, imported: str) -> list[str]:
    theirs = layer_of(imported)
    if own == "sandbox" or theirs == "sandbox":
        allowed = theirs == "core" or own == theirs or own == "front"
    elif own is None or theirs is None:
        return [f"{module} or {imported} belongs to no layer"]
    else:
        allowed = RANK[theirs] > RANK[own] or own == theirs
        allowed = allowed and SIBLINGS.get(own) != theirs
    return [] if allowed else [f"{module} ({own}) imports {imported} ({theirs})"]


def cycles() -> list[list[str]]:
    """Import cycles among project modules (a package counts as its ``__init__``)."""
    graph = {m: sorted(i for i in imports_of(m) if i in MODULES and i != m) for m in MODULES}
    found, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state[nxt] == 1:
                found.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif state[nxt] == 0:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in graph:
        if state[start] == 0:
            visit(start, [start])
    return found


def test_every_module_imports_only_its_own_layer_and_those_below() -> None:
    assert violations() == []


def test_no_import_cycles() -> None:
    assert cycles() == []


@pytest.mark.parametrize(("module", "imported", "why"), [
    ("jobops.core.rounds", "redis", "jobops.core.rounds (core) imports redis"),
    ("jobops.core.rounds", "settings", "jobops.core.rounds (core) imports settings (settings)"),
    ("jobops.state.limits", "jobops.linkedin.status",
     "jobops.state.limits (state) imports jobops.linkedin.status (linkedin)"),
    ("workers.runtime", "tasks.scheduling",
     "workers.runtime (workers) imports tasks.scheduling (tasks)"),
    ("sandbox.state", "jobops.state.keys", "sandbox.state (sandbox) imports jobops.state.keys "
     "(state)"),
])
def test_the_contract_names_an_import_across_layers(module: str, imported: str, why: str
                                                    ) -> None:
    assert violations([module], lambda m: imports_of(m) | {imported}) == [why]


_LUA = re.compile(r"redis\.call\(|\bKEYS\[\d\]|\bARGV\[\d\]")


def test_no_python_module_outside_tests_and_benchmarks_holds_a_lua_script() -> None:
    holding = [str(path.relative_to(ROOT)) for path in MODULES.values()
               if _LUA.search(path.read_text())]
    assert holding == []


def test_every_script_states_its_keys_and_argv() -> None:
    scripts = sorted((ROOT / "jobops" / "state" / "scripts").glob("*.lua"))
    assert scripts
    unstated = [p.name for p in scripts
                if not re.search(r"^-- KEYS:.*ARGV:", p.read_text(), re.M | re.S)]
    assert unstated == []
