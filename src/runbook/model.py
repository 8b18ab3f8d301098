"""The runbook schema: typed models of one phase's runbook (steps, stages, inputs, report material).

Models reject unknown keys; `loader.py` turns their errors into `file:line:col` messages with a
suggestion. `json_schema()` exports the format, including every action's parameters (and, as the
`x-runbook-output` annotation, its declared output), for editors.
"""

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .distributions import skip_pydantic_plugin_scan

skip_pydantic_plugin_scan()  # before the first model (here or in .notebooks) is built

from .notebooks.cells import CellRef  # noqa: E402
from .phase_ids import PHASE_ID as PHASE_ID  # noqa: E402, PLC0414 (re-exported, like the two below)
from .phase_ids import normalise_phase as normalise_phase  # noqa: E402, PLC0414
from .phase_ids import phase_group as phase_group  # noqa: E402, PLC0414

STAGES = ("discovery", "fix", "verify")
StageName = Literal["discovery", "fix", "verify"]
STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Input(Strict):
    """A declared input: a variable filled from --var, the environment, the target or a default."""

    env: str | None = Field(None, description="environment variable (or .env key) that supplies it")
    default: Any = Field(None, description="value used when nothing else supplies one")
    secret: bool = Field(False, description="mask the value everywhere output leaves the process")
    required: bool = Field(False, description="fail before any step runs when no value is found")
    description: str | None = Field(None, description="what the input is for (shown in reports and docs)")


class Expectation(Strict):
    that: str = Field(description="a Jinja expression over `output` that must be true")
    message: str | None = Field(None, description="what it means when it is false")


class Reproduce(Strict):
    """What the fault looks like before the fix: the expected failure signature of a verify step."""

    expect: list[str | Expectation] = Field(
        min_length=1,
        description="expressions over `output` that hold when the step fails the way the fault makes it fail "
        "(e.g. `output.status == 404`); the fault counts as reproduced only when they all hold",
    )

    @field_validator("expect", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value


class Step(Strict):
    id: str = Field(description="unique in the runbook; used by --from/--step and `steps.<id>`")
    title: str | None = Field(None, description="what the step does, in words (default: its id)")
    uses: str = Field(description="the action to run (see `runbook actions`)")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="action parameters")
    register_: str | None = Field(None, alias="register", description="name under which later steps see the output")
    expect: list[str | Expectation] = Field(
        default_factory=list,
        description="checks over `output` after the step ran: Jinja expressions, or {that, message} mappings",
    )
    when: str | bool | None = Field(None, description="run only when this expression is true")
    retries: int = Field(0, ge=0, le=1000, description="how many more times to try after a failed attempt")
    delay: float = Field(1.0, ge=0, description="seconds to wait between attempts")
    until: str | None = Field(None, description="retry until this expression over `output` is true")
    timeout: float | None = Field(None, gt=0, description="seconds before the step is stopped")
    continue_on_error: bool = Field(False, description="record a failure of this step and go on with the next")
    description: str | None = Field(None, description="why this step exists (shown in reports)")
    cells: list[int | str] = Field(default_factory=list, description="cells this step concerns (reports)")
    approve: bool = Field(
        False, description="ask a person before this step changes anything (the terminal prompt, or --yes)"
    )
    changes: bool | None = Field(
        None,
        description="whether the step changes anything (default: the action decides); `false` lets a read-only "
        "step (e.g. notebook.run of cells that only read) run under --dry-run",
    )
    reproduce: Reproduce | None = Field(
        None, description="verify steps: the expected failure signature before the fix (see Reproduce)"
    )

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not STEP_ID.match(value):
            raise ValueError("step ids start with a letter or _ and use letters, digits, - and _")
        return value

    @field_validator("expect", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    @property
    def label(self) -> str:
        return self.title or self.id


# ---------------------------------------------------------------- authored report material
#
# Every string below is a template rendered with the run's registered values (the sandbox the steps
# use: `{{ image.model }}`); `expect:` ties a claim to those values, and the report flags a claim
# that discovery contradicts instead of repeating it.

ClaimChecks = list[str | Expectation]
_CLAIM_EXPECT = (
    "expressions over the run's registered values (`vars`, `register` names, `steps`) that hold when the "
    "claim is true; when one is false the report shows '⚠️ contradicted by discovery' with its message"
)


def _claim_checks(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


class RootCause(Strict):
    title: str = Field(description="the cause in one line")
    expected: str | list[str] | None = Field(None, description="what the notebook or config assumed")
    actual: str | list[str] | None = Field(None, description="what is really there")
    detail: str | None = Field(None, description="more explanation, in markdown")
    expect: ClaimChecks = Field(default_factory=list, description=_CLAIM_EXPECT)

    _one_or_many = field_validator("expect", mode="before")(_claim_checks)


class Lesson(Strict):
    """A lesson that states a fact discovery can check (a plain string is a lesson too)."""

    text: str = Field(description="the lesson, in markdown")
    expect: ClaimChecks = Field(default_factory=list, description=_CLAIM_EXPECT)

    _one_or_many = field_validator("expect", mode="before")(_claim_checks)


class CellNote(Strict):
    cell: CellRef = Field(
        description="the cell, addressed as steps address cells: a number ('Cell 109'), an id, or "
        "{id|number|tag|pattern: …}"
    )
    id: str | None = Field(None, description="the cell's notebook id, when it has one")
    description: str | None = Field(None, description="what is wrong in the cell")
    change: str | None = Field(None, description="what the fix changes in it")


class CellDetail(Strict):
    """One per-cell section of the report: issue, root cause, fix, and the Azure fix's CLI and portal path."""

    cell: CellRef = Field(description="the cell: a number, an id, or {id|number|tag|pattern: …}")
    title: str | None = Field(None, description="the section's title (default: the cell's first line)")
    issue: str | None = Field(None, description="what the cell did wrong, as the person saw it")
    root_cause: str | None = Field(None, description="why it failed")
    fix: str | None = Field(None, description="what the fix changed in the cell (and in Azure)")
    step: str | None = Field(
        None, description="the fix step (azure.update/create) whose az CLI command and portal path to show"
    )
    az_cli: str | None = Field(None, description="a CLI command to show when no step applies it")
    portal: str | None = Field(None, description="a portal path to show when no step applies it")


class ActionItem(Strict):
    """A postmortem action item: what will be done, who owns it, and where it is tracked."""

    action: str = Field(description="what will be done")
    owner: str = Field(description="who owns it")
    ticket: str = Field(description="where it is tracked: a ticket id or URL")
    done: bool = Field(False, description="already done")


class ChangelogLines(Strict):
    fixed: list[str] = Field(default_factory=list, description="lines for the changelog's Fixed section")
    changed: list[str] = Field(default_factory=list, description="lines for the changelog's Changed section")
    added: list[str] = Field(default_factory=list, description="lines for the changelog's Added section")


class ReportMaterial(Strict):
    """What a person knows and the run cannot discover: authored sections of the report."""

    summary: str | None = Field(None, description="the report's summary paragraph (default: written from the run)")
    root_causes: list[RootCause] = Field(default_factory=list, description="why it broke, one entry per cause")
    lessons: list[str | Lesson] = Field(
        default_factory=list, description="what to remember next time (a string, or {text, expect} to check it)"
    )
    cells: list[CellNote] = Field(default_factory=list, description="the 'Cells to Fix' table")
    cells_detail: list[CellDetail] = Field(default_factory=list, description="one report section per cell")
    expected_fix: str | None = Field(None, description="what the fix is expected to achieve")
    success_criteria: list[str] = Field(default_factory=list, description="how to tell the phase is resolved")
    files: list[str] = Field(default_factory=list, description="files to modify")
    changelog: ChangelogLines = Field(default_factory=ChangelogLines, description="lines for CHANGELOG.md")
    notes: str | None = Field(None, description="anything else, in markdown, at the end of the report")
    # Postmortem fields: rendered only when authored.
    trigger: str | None = Field(
        None, description="postmortem: the event that set the failure off (the root causes say why it could)"
    )
    impact: str | None = Field(None, description="postmortem: who or what was affected, and how much")
    detection: str | None = Field(None, description="postmortem: how the fault was noticed")
    action_items: list[ActionItem] = Field(
        default_factory=list, description="postmortem: follow-up work, each with an owner and a ticket"
    )


class Runbook(Strict):
    phase: str = Field(description='the phase this runbook resolves, e.g. "1.5"')
    title: str = Field(description="the phase's title, as in the plan")
    summary: str | None = Field(None, description="what is broken, in one or two sentences")
    next: str | None = Field(None, description="the phase that follows, e.g. 1.6")
    reproduce: bool = Field(True, description="run the verify steps once before the fix")
    vars: dict[str, Any] = Field(default_factory=dict, description="fixed values templates can use by name")
    inputs: dict[str, Input] = Field(
        default_factory=dict, description="values supplied at run time (--var, environment, target, default)"
    )
    discovery: list[Step] = Field(default_factory=list, description="read-only steps that find out what is there")
    fix: list[Step] = Field(default_factory=list, description="steps that change files or resources")
    verify: list[Step] = Field(
        default_factory=list, description="checks that must pass after the fix (and fail before it, when reproducing)"
    )
    report: ReportMaterial = Field(default_factory=ReportMaterial, description="authored sections of the report")

    @field_validator("phase", "next", mode="before")
    @classmethod
    def _phase(cls, value: Any) -> Any:
        if value is None:
            return None
        text = normalise_phase(str(value))
        if not PHASE_ID.match(text):
            raise ValueError(f"{value!r} is not a phase id like 1.5 or phase-1.5")
        return text

    def stages(self) -> list[tuple[StageName, list[Step]]]:
        return [("discovery", self.discovery), ("fix", self.fix), ("verify", self.verify)]

    def all_steps(self) -> list[tuple[StageName, Step]]:
        return [(stage, step) for stage, steps in self.stages() for step in steps]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the runbook format, with each action's parameters bound to its `uses`."""
    from . import actions
    from .actions import outputs

    schema = Runbook.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "runbook"
    defs = schema.setdefault("$defs", {})
    branches = []
    for spec in actions.all_specs():
        params = spec.params.model_json_schema(by_alias=True)
        for name, sub in params.pop("$defs", {}).items():
            defs.setdefault(name, sub)
        key = "Params_" + re.sub(r"\W", "_", spec.name)
        params["description"] = f"{spec.summary}\n\n{outputs.summary(spec.output)}"
        if spec.output is not None:
            # What the step gives later steps (through `register`): an annotation, not a constraint.
            output = outputs.json_schema(spec.output)
            for name, sub in output.pop("$defs", {}).items():
                if defs.setdefault(name, sub) != sub:
                    raise ValueError(f"two different models named {name} in the JSON Schema")
            output_key = "Output_" + re.sub(r"\W", "_", spec.name)
            defs[output_key] = output
            params["x-runbook-output"] = {"$ref": f"#/$defs/{output_key}"}
        defs[key] = params
        branches.append(
            {
                "if": {"properties": {"uses": {"const": spec.name}}, "required": ["uses"]},
                "then": {"properties": {"with": {"$ref": f"#/$defs/{key}"}}},
            }
        )
    step = defs["Step"]
    step["properties"]["uses"]["enum"] = actions.names()
    step["allOf"] = branches
    return schema
