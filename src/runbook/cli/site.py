"""`runbook docs build|serve`: generate the documentation site (the core is runbook.docs)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CONTEXT, State


@click.group(context_settings=CONTEXT)
def docs() -> None:
    """Generate the documentation site: progress, reports, runs, changelog, timeline, reference."""


@docs.command("build", context_settings=CONTEXT)
@click.option("--site-dir", type=click.Path(file_okay=False, path_type=Path), help="Where to build the site (default: site/).")
@click.pass_obj
def docs_build(state: State, site_dir: Path | None) -> None:
    """Write the generated pages into docs/, then run `mkdocs build --strict`.

    Fails (exit 1) with mkdocs's warnings when the strict build has any.
    """
    from ..docs import build_site, generate_docs
    from . import command_reference

    workspace = state.workspace()
    pages = generate_docs(workspace, commands=command_reference())
    state.say(f"generated {len(pages)} pages in {workspace.config.paths.docs}/")
    built = build_site(workspace, site_dir)
    state.say(f"built the site in {built}")


@docs.command("serve", context_settings=CONTEXT)
@click.option("--port", type=int, default=8000, show_default=True, help="Port on 127.0.0.1.")
@click.pass_obj
def docs_serve(state: State, port: int) -> None:
    """Write the generated pages, then preview the site with `mkdocs serve` on 127.0.0.1."""
    from ..docs import generate_docs, serve_site
    from . import command_reference

    workspace = state.workspace()
    generate_docs(workspace, commands=command_reference())
    serve_site(workspace, port=port)
