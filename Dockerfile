# syntax=docker/dockerfile:1
# The kai-bridge image: `kai-bridge serve` on port 8080, as a non-root user, logs on stderr.
#
#   docker build -t kai-bridge:0.1.0 .
#   docker run --rm -p 8080:8080 -e KAI_BRIDGE_MCP_AUTH_TOKEN="$(openssl rand -hex 32)" kai-bridge:0.1.0
#
# Two stages: `build` turns the source into wheels (ours and every dependency's); the final
# stage installs them from a bind mount, so neither the wheels nor a compiler nor the source
# end up in the image. Every dependency ships binary wheels for Linux x86_64 and arm64
# (cryptography, pydantic-core, psycopg[binary]), so no compiler is needed even to build.
# Settings come from KAI_BRIDGE_* variables at run time (README "Configuration"); the image
# holds no secret. Kubernetes: manifests/kubernetes/ (probes there; HEALTHCHECK is for Docker).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY kai_bridge ./kai_bridge
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kai-bridge" \
      org.opencontainers.image.description="MCP server that bridges KAI tools and Coze agents" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KAI_BRIDGE_DATA_DIR=/var/lib/kai-bridge \
    KAI_BRIDGE_LOG_DIR=/var/log/kai-bridge \
    KAI_BRIDGE_LOG_FILES=false
# A fixed numeric uid/gid (10001), so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
# /var/lib/kai-bridge is the SQLite folder for a single container (mount a volume there);
# with PostgreSQL (KAI_BRIDGE_STORE_URL) nothing is written to it.
RUN groupadd --system --gid 10001 kai \
    && useradd --system --uid 10001 --gid kai --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin kai \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/kai-bridge
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links=/wheels /wheels/kai_bridge-*.whl \
    && python -m pip uninstall --yes setuptools wheel
USER 10001:10001
WORKDIR /var/lib/kai-bridge
EXPOSE 8080
# Docker only (Kubernetes ignores it and uses the Deployment's probes): /health on the default port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
ENTRYPOINT ["kai-bridge"]
CMD ["serve", "--host", "0.0.0.0"]
