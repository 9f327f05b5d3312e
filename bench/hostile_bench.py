"""Hostile user text: CPU time to parse a SKILL.md and build its dataset, before and after the linear patterns,
and /api/health's latency while a hostile 1 MB skill is previewed on a live server.

    uv run python bench/hostile_bench.py

Prints one line per figure with the load average beside it (docs/fault-tolerance.md quotes a run). The old
link pattern is timed on small inputs only and its growth shown as a ratio: at 80 KB it took 20 s.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import threading
import time

import httpx

from skill_adapter.core.budget import work_budget
from skill_adapter.core.errors import SkillAdapterError
from skill_adapter.datasets.builder import _strip_markdown, build_dataset
from skill_adapter.skills.parser import parse_skill

OLD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def links(size: int) -> str:
    return "[" * (size // 2) + "](" * (size // 4)


def skill(body: str) -> str:
    return f"---\nname: hostile\ndescription: Use when testing.\n---\n\n# T\n\n{body}\n"


def cpu(fn: object) -> float:
    started = time.thread_time()
    fn()  # type: ignore[operator]
    return time.thread_time() - started


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def parse_and_build(text: str) -> str:
    try:
        with work_budget():
            build_dataset(parse_skill(text))
        return "dataset"
    except SkillAdapterError as exc:
        return f"422 {getattr(exc, 'reason', exc.code)}"


def main() -> None:
    for size in (5_000, 10_000, 20_000):
        old = cpu(lambda size=size: OLD_LINK.sub(r"\1", links(size)))
        new = cpu(lambda size=size: _strip_markdown(links(size)))
        print(f"link pattern, {size // 1000} KB: old {old:.3f} s CPU, new {new * 1000:.2f} ms CPU ({load()})")
    for size in (80_000, 1_000_000):
        text = skill(links(size))
        started = time.thread_time()
        outcome = parse_and_build(text)
        seconds = time.thread_time() - started
        print(f"parse + build, {size // 1000} KB of brackets: {seconds:.3f} s CPU -> {outcome} ({load()})")
    print("heading spam, 1 MB: -> ", end="")
    started = time.thread_time()
    result = parse_and_build(skill("# h\n" * 250_000))
    print(f"{result} after {time.thread_time() - started:.3f} s CPU ({load()})")
    health_during_preview()


def health_during_preview() -> None:
    import tempfile
    from pathlib import Path

    import uvicorn

    from skill_adapter.api.connections import guarded_protocol
    from skill_adapter.api.main import create_app
    from skill_adapter.core.config import Settings

    folder = Path(tempfile.mkdtemp())
    settings = Settings(_env_file=None, model="tiny", data_dir=folder / "data", checkpoint_dir=folder / "ck")  # type: ignore[call-arg]
    app = create_app(settings, enqueue=lambda _: None, run_sweeper=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", http=guarded_protocol(30)))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=120) as client:
        idle = [timed(client) for _ in range(50)]
        hostile = skill(links(960_000)).encode()
        busy: list[float] = []
        done = threading.Event()

        def preview() -> None:
            with httpx.Client(base_url=base, timeout=120) as other:
                started = time.monotonic()
                status = other.post("/api/skills/preview", files={"file": ("SKILL.md", hostile)}).status_code
                print(f"hostile 1 MB preview: {status} in {time.monotonic() - started:.2f} s wall ({load()})")
            done.set()

        threading.Thread(target=preview).start()
        while not done.is_set():
            busy.append(timed(client))
    server.should_exit = True
    print(
        f"/api/health: idle median {statistics.median(idle) * 1000:.1f} ms; during the preview "
        f"{len(busy)} answers, median {statistics.median(busy) * 1000:.1f} ms, max {max(busy) * 1000:.1f} ms ({load()})"
    )


def timed(client: httpx.Client) -> float:
    started = time.monotonic()
    client.get("/api/health")
    return time.monotonic() - started


if __name__ == "__main__":
    main()
