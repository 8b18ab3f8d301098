"""Shell completion for `runbook`: phases, step ids, targets, --var names and actions from the workspace.

Completion never fails: a command line outside a workspace (or a broken one) completes nothing.
"""

from __future__ import annotations

from typing import Any

import click


def _completion_workspace(ctx: click.Context) -> Any:
    from ..workspace import load_workspace

    root = ctx.find_root()
    path = root.params.get("workspace") if root is not None else None
    try:
        return load_workspace(path)
    except Exception:
        return None


def _complete_phase(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    workspace = _completion_workspace(ctx)
    if workspace is None:
        return []
    return [
        CompletionItem(phase, help=workspace.phase_title(phase))
        for phase in workspace.phase_ids()
        if phase.startswith(incomplete.removeprefix("phase-"))
    ]


def _complete_step(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    workspace = _completion_workspace(ctx)
    phase = ctx.params.get("phase")
    if workspace is None or not phase:
        return []
    try:
        loaded = workspace.load_runbook(str(phase))
    except Exception:
        return []
    return [
        CompletionItem(step.id, help=f"{stage}: {step.label}")
        for stage, step in loaded.runbook.all_steps()
        if step.id.startswith(incomplete)
    ]


def _complete_target(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    workspace = _completion_workspace(ctx)
    if workspace is None:
        return []
    return [
        CompletionItem(name, help=target.description or target.kind)
        for name, target in workspace.config.targets.items()
        if name.startswith(incomplete)
    ]


def _complete_action(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    from .. import actions as registry

    return [CompletionItem(spec.name, help=spec.summary) for spec in registry.all_specs() if spec.name.startswith(incomplete)]


def _complete_var(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    workspace = _completion_workspace(ctx)
    phase = ctx.params.get("phase")
    if workspace is None or not phase or "=" in incomplete:
        return []
    try:
        runbook = workspace.load_runbook(str(phase)).runbook
    except Exception:
        return []
    return [f"{name}=" for name in sorted({*runbook.vars, *runbook.inputs}) if name.startswith(incomplete)]
