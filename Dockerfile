# syntax=docker/dockerfile:1
# driftline container image.
#   docker build -t driftline:0.1.0 .
#   docker run --rm -p 8000:8000 -e DRIFTLINE_TOKEN=change-me driftline:0.1.0
#   docker run --rm -p 8000:8000 -e DRIFTLINE_TOKEN=change-me \
#     -v $PWD/config.yaml:/etc/driftline/config.yaml:ro driftline:0.1.0
#
# Stage 1 builds the driftline wheel, with its native event decoder (native/, Rust) and
# drift-test kernels (native/kernels/), and installs it, with its runtime dependencies only
# (no test extras, no build tools), into a virtualenv; stage 2 copies that virtualenv onto a
# clean slim image and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUST_IMAGE=rust:1.85-slim-bookworm
# The slim sidecar image has the core install only; `--build-arg EXTRAS=all` adds the HTML
# report, MLflow, `dashboards push` and the confluent-kafka client (or name some:
# report,mlflow,grafana,kafka-confluent).
ARG EXTRAS=""

FROM ${RUST_IMAGE} AS rust

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
# The Rust toolchain, and a C linker for it, only in this stage. Unpinned: Debian's
# security updates replace libc6-dev's exact version, and this stage is thrown away.
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Runtime dependencies first (read from pyproject.toml's [project] dependencies, no
# extras), in their own layer, so that source edits do not reinstall them.
# Pinned to the tested versions of constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python -m venv /opt/driftline \
 && /opt/driftline/bin/pip install --upgrade "pip>=24" "setuptools>=68" wheel \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime-requirements.txt \
 && /opt/driftline/bin/pip install -c constraints.txt -r /tmp/runtime-requirements.txt
COPY . .
RUN /opt/driftline/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && wheel="$(ls /wheels/driftline-*.whl)" \
 && /opt/driftline/bin/pip install -c constraints.txt "${wheel}${EXTRAS:+[${EXTRAS}]}" \
 && /opt/driftline/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/driftline -name '__pycache__' -type d -prune -exec rm -rf {} + \
 && /opt/driftline/bin/python -P -c "import service, service._native, detectors, detectors._kernels"

FROM ${PYTHON_IMAGE} AS runtime
ARG DRIFTLINE_UID=10001
LABEL org.opencontainers.image.title="driftline" \
      org.opencontainers.image.description="ML model monitoring: drift, performance and drift-triggered retraining" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/driftline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DRIFTLINE_STATE_DIR=/var/lib/driftline \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache
RUN groupadd --system --gid ${DRIFTLINE_UID} driftline \
 && useradd --system --uid ${DRIFTLINE_UID} --gid ${DRIFTLINE_UID} \
            --home-dir /home/driftline --create-home --shell /usr/sbin/nologin driftline \
 && mkdir -p /etc/driftline /var/lib/driftline \
 && printf 'state_dir: /var/lib/driftline\n' > /etc/driftline/config.yaml \
 && chown -R ${DRIFTLINE_UID}:${DRIFTLINE_UID} /var/lib/driftline
COPY --from=build /opt/driftline /opt/driftline
USER ${DRIFTLINE_UID}:${DRIFTLINE_UID}
WORKDIR /var/lib/driftline
# Checkpoints and the webhook outbox; mount a volume here to keep them across restarts.
VOLUME ["/var/lib/driftline"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["driftline"]
# Serving 0.0.0.0, driftline refuses to start without an admin token: pass DRIFTLINE_TOKEN
# (docs/security.md), so the image never runs with its mutating routes open.
CMD ["serve", "--host", "0.0.0.0", "--config", "/etc/driftline/config.yaml"]
