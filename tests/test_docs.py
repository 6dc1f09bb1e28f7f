"""The documentation (SPEC §11 Docs): the README is a front door (short, its commands the ones CI runs, every link
into docs/ resolving), the site builds with --strict and fails on a broken link, and the configuration and
command-line references made by docs/hooks/reference.py list every setting and every subcommand."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from markdown.extensions.toc import slugify
from pydantic import Field
from pydantic_settings import BaseSettings

from bot.cli.commands import build_parser
from bot.config.settings import DetectionSettings, Settings
from tests.support.records import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def reference_hook() -> ModuleType:
    """docs/hooks/reference.py as MkDocs loads it: by its path (docs/ is no package)."""
    spec = importlib.util.spec_from_file_location("sesguard_docs_reference", DOCS / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def anchors(page: Path) -> set[str]:
    """The heading IDs MkDocs gives a page (Python-Markdown's toc slugify over the heading's text)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)  # no headings inside code blocks
    return {slugify(re.sub(r"[`*]", "", heading), "-") for heading in re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)}


# ── the README ──────────────────────────────────────────────────────────────────────────────────────────────

def test_the_readme_is_a_front_door_of_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= 250


def test_the_readme_shows_the_demo_command_and_the_test_command_ci_runs():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    test_command = ci[ci.index("# The README's test command:") + 1]
    first_block = re.search(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert first_block is not None
    assert first_block.group(1).splitlines() == ["pip install . && sesguard demo", test_command]


def test_every_link_from_the_readme_into_docs_resolves_to_a_page_and_its_heading():
    links = [target for target in LINK.findall(README.read_text()) if not re.match(r"[a-z]+:", target)]
    into_docs = [target for target in links if target.startswith("docs/")]
    assert len(into_docs) >= 15  # the front door links the site's pages
    for target in links:
        path, _, anchor = target.partition("#")
        assert (REPO / path).is_file(), target
        if anchor:
            assert anchor in anchors(REPO / path), target


def test_every_page_of_the_site_is_reachable_from_the_readme_or_the_site_index():
    linked = {(REPO / target.partition("#")[0]).resolve() for target in LINK.findall(README.read_text())}
    linked |= {(DOCS / target.partition("#")[0]).resolve() for target in LINK.findall((DOCS / "index.md").read_text())
               if not re.match(r"[a-z]+:", target)}
    pages = {page.resolve() for page in DOCS.rglob("*.md")} - {(DOCS / "index.md").resolve()}
    assert pages - linked == set()


# ── the references made from the code ──────────────────────────────────────────────────────────────────────

def test_the_configuration_reference_lists_every_setting_with_its_description():
    hook = reference_hook()
    page = hook.settings_reference()
    for name, field in Settings.model_fields.items():
        env = hook.env_name(name, field)
        assert field.description and field.description.strip(), env
        row = next((line for line in page.splitlines() if line.startswith(f"| `{env}` |")), None)
        assert row is not None, env
        assert " ".join(field.description.split()).replace("|", "\\|") in row
    # detection's settings (what scan reads) first, under their own heading, then every other one
    detection, rest = page.split("### Slack, the store, the worker and the responses")
    assert all(f"| `{hook.env_name(n, f)}` |" in detection for n, f in DetectionSettings.model_fields.items())
    assert len(re.findall(r"^\| `", page, re.M)) == len(Settings.model_fields)
    assert "| `SESGUARD_POLL_SECONDS` | `300` |" in rest and "| `SLACK_BOT_TOKEN` | — |" in rest
    assert "| `SESGUARD_RESPONSE_ACTIONS` | `false` |" in rest and "| `AWS_REGIONS` | `us-east-1` |" in rest


def test_a_setting_without_a_description_stops_the_reference():
    hook = reference_hook()

    class Undocumented(BaseSettings):
        documented: int = Field(1, alias="DOCUMENTED")
        """says what it is"""
        forgotten: int = Field(2, alias="FORGOTTEN")

        model_config = {"use_attribute_docstrings": True}

    with pytest.raises(hook.MissingDescription, match="FORGOTTEN"):
        hook.settings_table(Undocumented, list(Undocumented.model_fields))


def test_the_command_line_reference_lists_every_subcommand_and_every_option():
    hook = reference_hook()
    page = hook.commands_reference()
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command").choices
    assert set(subparsers) == {"scan", "demo", "serve", "socket", "poll", "worker", "investigate", "ip-ranges"}
    for name, sub in subparsers.items():
        section = page.split(f"### `sesguard {name}`\n", 1)[1].split("\n### ", 1)[0]
        assert f"[`{name}`](#sesguard-{name})" in page  # the command list links the section
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section, (name, option)
            if not action.option_strings:
                assert f"`{action.metavar or action.dest}`" in section, (name, action.dest)
    assert "--version" in page


def test_the_hook_fills_the_reference_pages_marks():
    hook = reference_hook()
    configuration = (DOCS / "reference" / "configuration.md").read_text()
    cli = (DOCS / "reference" / "cli.md").read_text()
    assert hook.SETTINGS_MARK in configuration and hook.COMMANDS_MARK in cli
    filled = hook.on_page_markdown(configuration, page=None, config=None, files=None)
    assert hook.SETTINGS_MARK not in filled and "| `SESGUARD_OWNER_TAGS` | `owner,email,contact` |" in filled
    filled = hook.on_page_markdown(cli, page=None, config=None, files=None)
    assert hook.COMMANDS_MARK not in filled and "### `sesguard ip-ranges`" in filled


# ── the site ─────────────────────────────────────────────────────────────────────────────────────────────────

def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_site_builds_strictly_with_the_references_filled(tmp_path):
    result = build(REPO, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    configuration = (tmp_path / "site" / "reference" / "configuration" / "index.html").read_text()
    assert "SESGUARD_KNOWN_NETWORKS" in configuration and "sesguard:settings" not in configuration
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert 'id="sesguard-investigate"' in cli and "PATH_OR_URL" in cli
    assert not (tmp_path / "site" / "hooks").exists()  # the hook is not published


@pytest.mark.parametrize("broken", ["[a page](no-such-page.md)", "[a heading](detection.md#no-such-heading)"])
def test_a_broken_link_fails_the_build(tmp_path, broken):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with (tmp_path / "docs" / "paging.md").open("a") as page:
        page.write(f"\nSee {broken}.\n")
    result = build(tmp_path, tmp_path / "site")
    assert result.returncode != 0
    assert broken.split("(")[1].rstrip(")").split("#")[0] in result.stderr
