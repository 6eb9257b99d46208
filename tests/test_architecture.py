"""No import circles in app/: every import counts, also under TYPE_CHECKING or in a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            deps.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:  # `from app.x import y` is a module y, or a name in x
                full = f"{base}.{alias.name}"
                deps.add(full if full in modules else base)
    return {d for d in deps if d in modules and d != name}


def import_circles(root: Path = APP) -> list[set[str]]:
    """The strongly connected parts of a package's import graph with more than one module."""
    modules = _modules(root)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = set()
            while True:
                w = stack.pop()
                part.add(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(part)

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return circles


def test_no_import_circles_in_app() -> None:
    assert [sorted(c) for c in import_circles()] == []


def test_the_finder_sees_a_circle(tmp_path: Path) -> None:
    # The test above must be able to fail: a circle through a TYPE_CHECKING import and a
    # relative one is found, and a one-way import is not.
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n"
    )
    (pkg / "c.py").write_text("import pkg.a\n")
    assert import_circles(pkg) == [{"pkg.a", "pkg.sub.b"}]


# What a `tidings worker` must not import, and what each would cost it (issue 15's memory
# target: < 100 MB peak RSS): the web layer and Pillow (~20 MB), httpx with the rich and
# pygments its command line pulls in (~6 MB, loaded at a webhook's first call),
# cryptography (~9 MB, loaded to sign DKIM or unseal a webhook's secret), Babel (~1 MB,
# and ~10 MB of locale data for a date: i18n.LONG_DATES) and the Prometheus client.
NOT_IN_A_WORKER = (
    "fastapi", "starlette", "PIL", "httpx", "cryptography", "babel", "prometheus_client",
)  # fmt: skip


def test_a_worker_loads_no_web_framework_and_no_image_library() -> None:
    """`tidings worker` imports services, not the web layer, nor what only some sends use."""
    probe = (
        "import sys, app.cli, app.delivery.dispatcher\n"
        f"print(sorted(m for m in {NOT_IN_A_WORKER!r} if m in sys.modules))"
    )
    done = subprocess.run(  # a fresh interpreter: this one has imported the app already
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
