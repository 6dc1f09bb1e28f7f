"""The layout's rules (ARCHITECTURE.md), checked on the source: `detection` never imports `bot`; the Slack
app reaches into the worker only for its health report; no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "detection")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The sesguard modules `path` imports (at import time only, or anywhere in it)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def test_detection_never_imports_bot():
    offenders = {name: sorted(i for i in imports(path, top_level_only=False) if i.startswith("bot"))
                 for name, path in modules().items() if name.startswith("detection")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_slack_app_uses_only_the_workers_health_report():
    known = modules()
    offenders = {}
    for name, path in known.items():
        if name.startswith("bot.slack"):
            reached = {i for i in imports(path, top_level_only=False) if i.startswith("bot.worker") and i in known}
            if reached - {"bot.worker.health"}:
                offenders[name] = sorted(reached)
    assert offenders == {}


def test_no_import_cycles():
    known = modules()
    graph = {name: {i for i in imports(path, top_level_only=True) if i in known and i != name}
             for name, path in known.items()}
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
