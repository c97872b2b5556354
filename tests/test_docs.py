"""The front door stays a front door: the README is short, and every relative link in it and in docs/
points at a file of this repository (the measurement pages moved to docs/; a moved page must not 404)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "models" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_at_most_350_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 350


def test_every_relative_link_points_at_a_file():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_commands_in_the_docs_use_current_option_spellings():
    """Every ``onnxviz CMD ... --option`` in the README and docs/ is an option --help shows (old spellings
    such as ``--runs`` or ``mine --out`` still run, hidden, but the docs teach the current ones)."""
    import shlex

    import click

    from onnxviz.cli import main

    ctx = click.Context(main)
    shown = {name: {o for p in main.get_command(ctx, name).params if isinstance(p, click.Option) and not p.hidden
                    for o in p.opts + p.secondary_opts} for name in main.list_commands(ctx)}
    stale, seen = [], 0
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for m in re.finditer(r"onnxviz ([a-z-]+)\b([^`#\n|]*)", line):
                if m.group(1) not in shown:
                    continue
                seen += 1
                try:
                    words = shlex.split(m.group(2).replace("\\", ""))
                except ValueError:
                    words = m.group(2).split()
                stale += [f"{page.relative_to(ROOT)}:{number}: {m.group(1)} {w}" for w in words
                          if w.startswith("--") and w.split("=")[0] not in shown[m.group(1)]]
    assert seen > 20 and not stale, stale
