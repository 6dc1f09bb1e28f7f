"""The layout's rules (ARCHITECTURE.md, docs/architecture.md), checked on the source, counting imports made
inside functions too: `detection` never imports `bot`; no module imports itself back through others; a
capability never reaches into the processes (the worker's scheduler and ingestion, the command line, the
Bolt app) nor into another capability's listeners; only the Bolt app and the `/sesguard` router in
`bot.slack` know the capabilities."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "detection")
CAPABILITIES = ("alerts", "triage", "contact", "investigate", "contain", "page", "desk", "health")
# Where the capabilities are put together: the Bolt app registers their listeners, the web server serves the
# health report, the slash command routes to their sub-commands.
ASSEMBLY = ("bot.slack.app", "bot.slack.web", "bot.slack.commands.listeners")
PROCESSES = ("bot.worker.scheduler", "bot.worker.process", "bot.worker.ingest", "bot.cli", *ASSEMBLY)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The sesguard modules `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {i for i in imports(path) if i in known and i != name} for name, path in known.items()}


def capability(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "bot" and parts[1] in CAPABILITIES else None


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_detection_never_imports_bot():
    offenders = {name: sorted(i for i in found if i.startswith("bot"))
                 for name, found in graph().items() if name.startswith("detection")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_import_cycles_counting_imports_inside_functions():
    edges, cycles, state = graph(), [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_a_capability_never_reaches_into_the_processes():
    offenders = {name: sorted(i for i in found if within(i, PROCESSES))
                 for name, found in graph().items() if capability(name)}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_a_capability_never_imports_another_capabilitys_listeners():
    def foreign_listeners(name: str, found: set[str]) -> list[str]:
        return sorted(i for i in found if i.endswith(".listeners") and capability(i) not in (None, capability(name)))

    offenders = {name: foreign_listeners(name, found) for name, found in graph().items() if capability(name)}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_only_the_assembly_in_bot_slack_knows_the_capabilities():
    offenders = {name: sorted(i for i in found if capability(i))
                 for name, found in graph().items() if name.startswith("bot.slack") and not within(name, ASSEMBLY)}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_rules_see_imports_made_inside_functions(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from bot.slack.app import build_app\n    return build_app\n")
    assert "bot.slack.app" in imports(module)
