# The API with the built dashboard. Build: docker build -t skill-adapter-api .
# Run (docker-compose.yml does this): skill-adapter db upgrade, then skill-adapter serve --no-worker.
# The API never imports torch, so this image leaves out torch and the CUDA libraries (about 5 GB).

ARG UV_VERSION=0.13
ARG NODE_IMAGE=node:22-bookworm-slim
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# 1. The dashboard: frontend/ -> frontend/dist
FROM ${NODE_IMAGE} AS dashboard
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# 2. The API
FROM ${PYTHON_IMAGE}
COPY --from=uv /uv /uvx /usr/local/bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /app

# Dependencies first (cached while only the code changes), without torch and the CUDA wheels.
COPY pyproject.toml uv.lock README.md ./
RUN skip=$(uv export --frozen --no-dev --extra postgres --extra redis --no-hashes --no-emit-project \
        | grep -oE '^(torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==' | tr -d '=' \
        | sed 's/^/--no-install-package /' | tr '\n' ' ') \
    && uv sync --frozen --no-dev --no-install-project --extra postgres --extra redis $skip \
    && echo "$skip" > /opt/venv/.skipped-packages

COPY backend/ backend/
COPY skills/ skills/
RUN uv sync --frozen --no-dev --extra postgres --extra redis $(cat /opt/venv/.skipped-packages) \
    && python -c "import skill_adapter.api.main, sys; assert 'torch' not in sys.modules"
COPY --from=dashboard /src/frontend/dist /app/frontend/dist

ENV SKILL_ADAPTER_DASHBOARD_DIR=/app/frontend/dist \
    SKILL_ADAPTER_SKILLS_ROOT=/app/skills \
    SKILL_ADAPTER_DATA_DIR=/data/state \
    SKILL_ADAPTER_CHECKPOINT_DIR=/data/checkpoints
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=8)"
CMD ["sh", "-c", "skill-adapter db upgrade && exec skill-adapter serve --no-worker --host 0.0.0.0 --port 8000"]
