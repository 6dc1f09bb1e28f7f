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
CAPABILITIES = ("alerts", "triage", "contact", "investigate", "contain", "page", "desk", "health", "context")
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


# ── one outbox ────────────────────────────────────────────────────────────────────────────────────────
# The columns that say who holds an outbox row and until when. Only `bot.store.outbox` writes them: every
# outbox claims, renews and releases through it (ARCHITECTURE.md: "one outbox").
CLAIM_COLUMNS = {"claimed_by", "claimed_until"}
OUTBOX = "bot.store.outbox"
# The migrations move stored claims from one table to another, once, while no process holds anything.
MIGRATIONS = "bot.store.migrations"


def _column_named(node: ast.AST) -> str | None:
    """The claim column a dict key or an assignment target names: "claimed_by", `Model.claimed_by`,
    `col(Model.claimed_by)`."""
    if isinstance(node, ast.Call) and len(node.args) == 1:
        node = node.args[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        name = node.value
    elif isinstance(node, ast.Attribute):
        name = node.attr
    else:
        return None
    return name if name in CLAIM_COLUMNS else None


def claim_writes(source: str) -> list[str]:
    """Where `source` sets a claim column: a keyword (`.values(claimed_by=…)`, `store_values(claimed_until=…)`),
    a dict key (`.values({"claimed_by": …})`, `{Model.claimed_by: …}`), or an assignment (`row.claimed_by = …`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            found += [f"line {node.lineno}: {k.arg}=" for k in node.keywords if k.arg in CLAIM_COLUMNS]
        elif isinstance(node, ast.Dict):
            found += [f"line {node.lineno}: {{{name}: …}}" for name in map(_column_named, node.keys) if name]
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"line {node.lineno}: .{t.attr} =" for t in targets
                      if isinstance(t, ast.Attribute) and t.attr in CLAIM_COLUMNS]
    return found


def test_only_the_outbox_module_writes_claim_columns():
    offenders = {name: writes for name, path in modules().items()
                 if name != OUTBOX and not within(name, (MIGRATIONS,)) and (writes := claim_writes(path.read_text()))}
    assert offenders == {}


def test_the_claim_check_sees_each_way_of_writing_a_claim_column():
    copies = [
        "session.exec(sa.update(AlertPost).values(claimed_by=worker, claimed_until=now + claim))",
        "self.store_values(claimed_by=None, claimed_until=None)",
        'sa.update(Page).values({"claimed_by": None})',
        "sa.update(Page).values({col(Page.claimed_until): now})",
        "row.claimed_until = now",
    ]
    assert [bool(claim_writes(copy)) for copy in copies] == [True] * len(copies)
    # Reading a claim, or naming its column for the outbox module, writes nothing.
    assert claim_writes("Outbox(Page, col(Page.id), col(Page.claimed_by))\nheld = row.claimed_by == me") == []
