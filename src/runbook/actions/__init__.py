"""The action registry: named operations with declared parameters that steps `use`.

Built-in actions live in the modules of this package; `BUILTIN_ACTIONS` names the module of each,
and looking a name up imports that module only (validating a runbook of core steps loads no
notebook, HTTP or Azure family). Third-party packages add actions through the `runbook.actions`
entry-point group: each entry point names a module (importing it registers its actions with
`@action`) or an `ActionSpec`; they are loaded on the first lookup, and a plug-in's action wins over
a built-in of the same name, as when every built-in was loaded first. Listing the actions loads
every family. An unknown name is an error that lists the known ones.
Each action declares its output model (`output=`, see `runbook.actions.outputs`); calls through the
registry check the returned output against it when `RUNBOOK_CHECK_OUTPUTS=1` (the test suite).
A plug-in without a declared output still works; it is listed as "output not declared".
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from ..errors import ActionError, InputError, SecurityViolation, did_you_mean
from .outputs import NOT_DECLARED, Output, check, checking, describe
from .outputs import OutputField as OutputField  # re-exported: describe_outputs() returns them

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ..secrets import Redactor

Status = Literal["ok", "changed"]
#: Every built-in action and the module that registers it (tests/test_startup.py checks it against them).
BUILTIN_ACTIONS: dict[str, str] = {
    **dict.fromkeys(("assert", "manual", "set", "shell"), "runbook.actions.core"),
    **dict.fromkeys(("env.set", "file.replace"), "runbook.actions.files"),
    "http.request": "runbook.actions.http",
    **dict.fromkeys(
        ("azure.accounts", "azure.apim.apis", "azure.apim.operations", "azure.deployments", "azure.resource"),
        "runbook.actions.azure",
    ),
    **dict.fromkeys(("azure.create", "azure.list", "azure.update"), "runbook.actions.azure_write"),
    **dict.fromkeys(
        ("notebook.cells", "notebook.edit", "notebook.insert", "notebook.run", "notebook.set_source"),
        "runbook.actions.notebook",
    ),
}
BUILTIN_MODULES = tuple(dict.fromkeys(BUILTIN_ACTIONS.values()))
ENTRY_POINT_GROUP = "runbook.actions"


def _valid_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


# A parameter that holds a regular expression, checked when the runbook is validated.
Regex = Annotated[str, AfterValidator(_valid_regex)]


class Params(BaseModel):
    """Base of every action's parameter model: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


@dataclass
class Result:
    """What an action returns: `changed` when it modified something, its output, and evidence."""

    status: Status = "ok"
    output: Any = None
    diff: str | None = None
    # Structured facts for reports: cells touched, env keys set, files written…
    changes: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    message: str | None = None


@dataclass
class ActionContext:
    """Everything an action may use while it runs one step."""

    workspace_root: Path
    step_id: str
    stage: str
    dry_run: bool
    redactor: Redactor
    target: Any  # runbook.targets.TargetSession
    timeout: float | None
    stop: threading.Event
    allowed_paths: tuple[Path, ...] = ()
    confirm: Callable[[str], bool] | None = None
    assume_yes: bool = False
    warn: Callable[[str], None] = lambda _msg: None
    # Per-run shared objects (HTTP clients, kernels), closed by the executor at the end of the run.
    run_state: dict[str, Any] = field(default_factory=dict)
    # The last record of this step in earlier runs (for drift warnings, e.g. cell ids).
    previous: Mapping[str, Any] | None = None
    changed_files: set[Path] = field(default_factory=set)
    # Renders a value with the step's template context (for parameters listed in `raw_params`).
    render: Callable[[Any], Any] = lambda value: value
    # Live progress of a long step ("cell 109 (2/4)"), shown on a terminal, never recorded.
    progress: Callable[[str], None] = lambda _text: None

    def resolve_path(self, value: str | Path) -> Path:
        """Resolve a path against the workspace; refuse one that leaves it (unless allowed) or holds a NUL."""
        if "\0" in str(value):
            raise ActionError(
                f"path {str(value)!r} contains a NUL byte, which no file name can hold",
                hint="write the path without the \\u0000 (check the template or variable that built it)",
            )
        path = Path(value)
        if not path.is_absolute():
            path = self.workspace_root / path
        resolved = path.resolve()
        roots = (self.workspace_root.resolve(), *(p.resolve() for p in self.allowed_paths))
        if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
            raise SecurityViolation(
                f"path {value!s} leaves the workspace ({self.workspace_root})",
                hint="keep files inside the workspace, or list the folder under `allowed_paths:` "
                "in runbook.yaml",
            )
        return resolved


ActionFunc = Callable[[Any, ActionContext], Result]


@dataclass(frozen=True)
class ActionSpec:
    """A registered action: its name, parameter model, whether it changes anything, and its code."""

    name: str
    params: type[Params]
    func: ActionFunc
    changes: bool
    summary: str
    # Mutating actions that can show what they would do without doing it.
    supports_dry_run: bool = False
    # Parameters whose strings are not rendered up front (the action renders them itself).
    raw_params: tuple[str, ...] = ()
    # Actions that may wait (processes, HTTP, kernels) run in a worker thread so timeouts and
    # Ctrl-C can stop them; pure ones (set, assert) run inline.
    blocking: bool = True
    # The model of what the action returns (None: a plug-in that declares nothing).
    output: type[Output] | None = None
    # Whether a call changes anything can depend on its parameters (an HTTP DELETE does, a GET does
    # not); when given, this decides instead of `changes`.
    changes_when: Callable[[Any], bool] | None = None

    def changes_for(self, params: Any) -> bool:
        """Whether running the action with these (rendered) parameters can change anything."""
        return self.changes_when(params) if self.changes_when is not None else self.changes


_registry: dict[str, ActionSpec] = {}
_loaded = False  # every family and every plug-in
_plugins_loaded = False
_imported: set[str] = set()  # built-in modules imported through the registry
_lock = threading.RLock()

F = TypeVar("F", bound=ActionFunc)


def action(
    name: str,
    *,
    params: type[Params],
    changes: bool,
    summary: str,
    supports_dry_run: bool = False,
    raw_params: tuple[str, ...] = (),
    blocking: bool = True,
    output: type[Output] | None = None,
    changes_when: Callable[[Any], bool] | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as action `name`."""

    def decorate(func: F) -> F:
        register(
            ActionSpec(
                name=name,
                params=params,
                func=func,
                changes=changes,
                summary=summary,
                supports_dry_run=supports_dry_run,
                raw_params=raw_params,
                blocking=blocking,
                output=output,
                changes_when=changes_when,
            )
        )
        return func

    return decorate


def register(spec: ActionSpec) -> None:
    existing = _registry.get(spec.name)
    if existing is not None and _is_builtin(spec) and not _is_builtin(existing):
        return  # a plug-in's (or a test's) action of this name came first and stays
    if spec.output is not None:
        spec = replace(spec, func=_contract_checked(spec.name, spec.func, spec.output))
    _registry[spec.name] = spec


def _is_builtin(spec: ActionSpec) -> bool:
    return getattr(spec.func, "__module__", None) in BUILTIN_MODULES


def _contract_checked(name: str, func: ActionFunc, model: type[Output]) -> ActionFunc:
    """`func`, validating what it returns (or fails with) against `model` when checking is on."""

    @functools.wraps(func)
    def run(params: Any, ctx: ActionContext) -> Result:
        if not checking():
            return func(params, ctx)
        try:
            result = func(params, ctx)
        except ActionError as exc:
            check(name, model, exc.output, failed=True)
            raise
        check(name, model, result.output)
        return result

    return run


def _load() -> None:
    """Every built-in family and every plug-in (for listings and the unknown-name message)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _load_plugins()
        for module in BUILTIN_MODULES:
            _import_builtin(module)
        _loaded = True


def _import_builtin(module: str) -> None:
    with _lock:
        if module in _imported:
            return
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A family not built yet must not break the others.
            if exc.name != module:
                raise
        _imported.add(module)


@functools.cache
def plugin_entry_points() -> tuple[EntryPoint, ...]:
    """The installed `runbook.actions` entry points, read from package metadata (nothing imported;
    no metadata scan when no distribution declares the group: `runbook.distributions`)."""
    from ..distributions import entry_points

    return entry_points(ENTRY_POINT_GROUP)


def _load_plugins() -> None:
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for ep in plugin_entry_points():
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plug-in must say which one
                raise InputError(
                    f"cannot load action plug-in {ep.name!r} ({ep.value}): {type(exc).__name__}: {exc}",
                    hint="fix or uninstall the package that provides it",
                ) from exc
            if isinstance(loaded, ActionSpec):
                register(loaded)


def get(name: str) -> ActionSpec:
    """Look an action up by name (importing only its family); an unknown name lists the known ones
    and the closest match."""
    if not _plugins_loaded:
        _load_plugins()
    module = BUILTIN_ACTIONS.get(name)
    if module is not None and module not in _imported:
        _import_builtin(module)
    try:
        return _registry[name]
    except KeyError:
        raise InputError(unknown_action_message(name)) from None


def unknown_action_message(name: str) -> str:
    _load()
    return f"unknown action {name!r}: {did_you_mean(name, _registry)}known actions: {', '.join(sorted(_registry))}"


def names() -> list[str]:
    _load()
    return sorted(_registry)


def all_specs() -> Iterator[ActionSpec]:
    _load()
    for name in sorted(_registry):
        yield _registry[name]


def describe_outputs(name: str) -> list[OutputField]:
    """The output fields of action `name` (path, type, description), nested ones included.

    Empty for an action that declares no output, and for `set` (its output is its `with` keys);
    `output_note(name)` says which in words.
    """
    spec = get(name)
    if spec.output is None or spec.output.echoes_with:
        return []
    return describe(spec.output)


def output_note(name: str) -> str | None:
    """A sentence for actions whose output is not a fixed list of fields, else None."""
    spec = get(name)
    if spec.output is None:
        return NOT_DECLARED
    if spec.output.echoes_with:
        return "Each key of `with` becomes a field of the output."
    return None
