"""docker-compose.yml, the Dockerfiles and .env.example: valid for docker-compose, and every file they name exists.

`docker-compose config` (Debian's docker-compose 1.29) validates without a Docker engine. CI installs it and
sets SKILL_ADAPTER_REQUIRE_COMPOSE=1, so there the check never skips.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
# Read at import: the autouse fixture clears SKILL_ADAPTER_* variables before each test.
REQUIRE_COMPOSE = bool(os.environ.get("SKILL_ADAPTER_REQUIRE_COMPOSE"))


def compose_exe() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if REQUIRE_COMPOSE:
            pytest.fail("docker-compose is not installed but SKILL_ADAPTER_REQUIRE_COMPOSE is set")
        pytest.skip("docker-compose is not installed (apt-get install -y docker-compose)")
    return exe


def compose_config(folder: Path, text: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f docker-compose.yml config -q` on ``text``, with .env made from .env.example."""
    (folder / "docker-compose.yml").write_text(text)
    shutil.copy(ROOT / ".env.example", folder / ".env")
    return subprocess.run(
        [compose_exe(), "-f", "docker-compose.yml", "config", "-q"],
        cwd=folder, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_compose_file_is_valid_and_a_broken_one_is_not(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    run = compose_config(tmp_path, text)
    assert run.returncode == 0, run.stderr
    broken_yaml = text.replace("restart: unless-stopped", "restart: [unless-stopped", 1)
    assert compose_config(tmp_path, broken_yaml).returncode != 0
    unknown_key = text.replace("    shm_size:", "    gpus_please: 1\n    shm_size:", 1)
    assert unknown_key != text and compose_config(tmp_path, unknown_key).returncode != 0


def test_compose_has_the_services_and_a_gpu_worker() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"api", "worker", "redis", "postgres", "dashboard"} <= set(services)
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["SKILL_ADAPTER_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["SKILL_ADAPTER_BROKER_URL"].startswith("redis://redis:")
    assert "skill-adapter db upgrade" in (ROOT / "Dockerfile").read_text()


def test_env_example_covers_every_compose_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    defined = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert used and used <= defined, f"not in .env.example: {sorted(used - defined)}"


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in patterns)


def copy_sources(dockerfile: Path) -> list[str]:
    """The build-context sources of every COPY/ADD without --from."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    sources = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD") or any(w.startswith("--from") for w in words):
            continue
        args = [word for word in words[1:] if not word.startswith("--")]
        sources.extend(args[:-1])
    return sources


def test_every_referenced_file_exists() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    dockerfiles = []
    for name, service in spec["services"].items():
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert context.is_dir(), name
            dockerfiles.append(context / build.get("dockerfile", "Dockerfile"))
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    assert {path.name for path in dockerfiles} == {"Dockerfile", "Dockerfile.worker"}
    for dockerfile in dockerfiles:
        assert dockerfile.is_file(), dockerfile
        sources = copy_sources(dockerfile)
        assert sources, f"{dockerfile.name} copies nothing"
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
            assert not dockerignored(source.rstrip("/")), f"{dockerfile.name}: COPY {source} is in .dockerignore"
    assert copy_sources(ROOT / "Dockerfile").count("frontend/package-lock.json") == 1
    assert dockerignored(".venv") and dockerignored("frontend/node_modules") and not dockerignored("backend")


def env_example_values() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, re.MULTILINE))


def test_copying_env_example_as_it_is_changes_no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who copies .env.example to .env and edits nothing gets the built-in defaults (issue 17)."""
    from skill_adapter.core.config import Settings

    for name in [n for n in os.environ if n.startswith("SKILL_ADAPTER_")]:
        monkeypatch.delenv(name)  # the built-in defaults, not the test tier's (which name the tiny model)

    values = {k: v for k, v in env_example_values().items() if k.startswith("SKILL_ADAPTER_")}
    fields = {name.removeprefix("SKILL_ADAPTER_").lower(): value or None for name, value in values.items()}
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    from_example = Settings(_env_file=None, **fields)  # type: ignore[arg-type]
    differ = {f: (getattr(from_example, f), getattr(defaults, f)) for f in fields if f != "model"}
    differ["model"] = (from_example.model_name_or_path, defaults.model_name_or_path)  # unset means the default
    differ = {f: pair for f, pair in differ.items() if pair[0] != pair[1]}
    assert differ == {}, f".env.example sets values other than the defaults (example, default): {differ}"


def test_compose_fallbacks_match_env_example() -> None:
    fallbacks = dict(re.findall(r"\$\{([A-Z0-9_]+):-([^}]*)\}", COMPOSE.read_text()))
    values = env_example_values()
    differ = {k: (v, values.get(k)) for k, v in fallbacks.items() if values.get(k) != v}
    assert fallbacks and differ == {}, f"docker-compose.yml's fallbacks differ from .env.example: {differ}"
