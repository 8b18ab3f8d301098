"""`runbook emulator`: serve the embedded Azure emulator on loopback (the core is runbook.azure.emulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import CONTEXT


@click.command(context_settings=CONTEXT)
@click.option("--estate", type=click.Path(dir_okay=False, path_type=Path), help="Estate file (default: the AI-gateway lab).")
@click.option(
    "--host",
    metavar="ADDRESS",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to listen on (127.0.0.1, ::1 or localhost); any other address is refused.",
)
@click.option("--arm-port", type=int, default=0, metavar="PORT", help="Port for ARM (default: a free one).")
@click.option(
    "--gateway-port", type=int, default=0, metavar="PORT", help="Port for the APIM gateway (default: a free one)."
)
@click.option(
    "--page-size", type=int, default=100, metavar="N", show_default=True, help="Items per ARM page (small values force paging)."
)
@click.option("--latency", type=float, default=0.0, metavar="SECONDS", help="Seconds added to every answer.")
@click.option(
    "--fault-rate",
    type=float,
    default=0.0,
    metavar="RATE",
    help="Share of requests (0..1) answered with a fault drawn from --fault-kinds.",
)
@click.option(
    "--fault-kinds",
    metavar="KINDS",
    help="Comma-separated faults to draw from: 429 and 503 (with Retry-After), 500, drop (the connection "
    "closes unanswered). Default: 429,503,drop. Needs --fault-rate.",
)
@click.option(
    "--seed",
    type=int,
    metavar="N",
    default=0,
    show_default=True,
    help="Seed of the fault draw: the same seed and the same requests give the same faults.",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file that keeps ARM writes: loaded at start when it exists, saved after every change.",
)
@click.option("--https", is_flag=True, help="Serve HTTPS with a throwaway CA (needs trustme); its PEM path is printed.")
def emulator(
    estate: Path | None,
    host: str,
    arm_port: int,
    gateway_port: int,
    page_size: int,
    latency: float,
    fault_rate: float,
    fault_kinds: str | None,
    seed: int,
    state_file: Path | None,
    https: bool,
) -> None:
    """Serve the embedded Azure emulator on loopback until Ctrl-C.

    It answers ARM (Cognitive Services accounts and deployments, API Management APIs and operations)
    and the APIM gateway's Azure OpenAI routes, from an estate file, and prints the URLs, the
    subscription key and the environment a notebook needs.
    """
    from ..azure.emulator import FaultPlan, serve_forever

    if fault_kinds is not None and not fault_rate:
        raise click.UsageError("--fault-kinds needs --fault-rate (the share of requests that fail)")
    plan: dict[str, Any] = {"rate": fault_rate}
    if fault_kinds is not None:
        plan["kinds"] = tuple(kind.strip() for kind in fault_kinds.split(",") if kind.strip())
    faults = FaultPlan(**plan) if fault_rate else None
    serve_forever(
        estate,
        host=host,
        arm_port=arm_port,
        gateway_port=gateway_port,
        page_size=page_size,
        latency=latency,
        faults=faults,
        seed=seed,
        echo=click.echo,
        state_file=state_file,
        https=https,
    )
