"""``skill-adapter doctor``: the service's health plus what this machine can train with, and what is missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from skill_adapter.core.config import Settings
from skill_adapter.health import health_report


def model_report(settings: Settings) -> dict[str, Any]:
    """The base model jobs will train (``Settings.base_model``): what it is, its size, whether it is ready.

    Never converts and never imports torch: a built-in model not yet converted says so."""
    resolved = settings.base_model()
    report: dict[str, Any] = {**resolved.to_dict(), "model": resolved.path, "summary": resolved.describe()}
    report["available_offline"] = resolved.ready or resolved.converts_on_first_use
    report["hf_hub_offline"] = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    return report


def doctor_report(settings: Settings) -> dict[str, Any]:
    """``{"health": ..., "model": ..., "machine": ..., "advice": [...]}``."""
    from skill_adapter.training.machine import describe_machine, machine_advice

    health = health_report(settings)
    machine = describe_machine()
    model = model_report(settings)
    advice = machine_advice(machine)
    if model["kind"] == "hub" and not model["ready"]:
        where = "and HF_HUB_OFFLINE is set: jobs will fail" if model["hf_hub_offline"] else "jobs will download it"
        advice.append(f"{model['model']} is not on this machine {where} (see docs/model-download.md)")
    elif model["problem"]:
        advice.append(f"{model['name']}: {model['problem']}")
    if model["converts_on_first_use"]:
        advice.append(
            f"{model['name']} is converted from its packaged GGUF on first use (once, about half a minute, "
            f"{model['size_bytes'] / 1e6:.0f} MB in {Path(model['path']).parent})"
        )
    if model["builtin"] == "tiny":
        advice.append("SKILL_ADAPTER_MODEL=tiny: jobs train the embedded toy test model, not a real LLM")
    return {"health": health, "model": model, "machine": machine, "advice": advice + health["warnings"]}


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value / 1024:.1f} GiB"


def format_doctor(report: dict[str, Any]) -> str:
    """The doctor report as text for a terminal."""
    health, machine, model = report["health"], report["machine"], report["model"]
    db, broker = health["database"], health["broker"]
    lines = [f"service: {health['status']}"]
    db_detail = f"revision {db.get('revision')} (newest {db.get('head')})" if db["status"] == "ok" else db["error"]
    lines.append(f"  database  {db['status']:<6} {db['url']}  {db_detail}")
    broker_detail = broker.get("error", "")
    if broker["status"] == "ok":
        waiting = ", ".join(f"{queue} {count}" for queue, count in (broker.get("messages") or {}).items())
        broker_detail = f"{broker.get('latency_ms')} ms" + (f", waiting: {waiting}" if waiting else "")
    lines.append(f"  broker    {broker['status']:<6} {broker['url']}  {broker_detail}")
    lines.append(f"  workers   {len(health['workers'])} live")
    for worker in health["workers"]:
        device = worker["device"]
        if worker["gpu_name"]:
            device = f"{worker['gpu_name']}, {_mb(worker['gpu_free_mb'])} free of {_mb(worker['gpu_total_mb'])}"
        job = f", running {worker['job_id']}" if worker["job_id"] else ""
        lines.append(f"    {worker['name'] or worker['id']}  [{','.join(worker['queues'])}]  {device}{job}")
    lines.append("this machine:")
    if machine["torch"] is None:
        lines.append(f"  python {machine['python']}, torch not installed (an API-only install: it cannot train)")
    else:
        cuda_build = machine["torch_cuda"] or "none"
        lines.append(f"  python {machine['python']}, torch {machine['torch']} (CUDA build {cuda_build})")
        lines.append(f"  CUDA      {'yes' if machine['cuda_available'] else 'no'}")
        for gpu in machine["gpus"]:
            lines.append(
                f"    cuda:{gpu['index']} {gpu['name']} (sm {gpu['capability']}), "
                f"{_mb(gpu['free_mb'])} free of {_mb(gpu['total_mb'])}"
            )
        lines.append(f"  precision {machine['precision']}, attention {machine['attn_implementation']}")
    lines.append(f"  flash-attn {machine['flash_attn'] or 'not installed'}")
    lines.append(f"  bitsandbytes {machine['bitsandbytes'] or 'not installed'}")
    lines.append(f"  model     {model['summary']}")
    if report["advice"]:
        lines.append("advice:")
        lines.extend(f"  - {line}" for line in report["advice"])
    return "\n".join(lines)
