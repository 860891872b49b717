# syntax=docker/dockerfile:1.7
#
# harmonize_bids as a BIDS App container that runs offline, on a GPU node or on a laptop.
#
#   docker build -t ghcr.io/harmonize-bids/harmonize-bids:0.1.0 .
#   docker run --rm --gpus all -v /data/bids:/data:ro -v /data/out:/out \
#       ghcr.io/harmonize-bids/harmonize-bids:0.1.0 /data /out participant -w /out/work --participant-label 01
#
# torch: PyPI's Linux wheel of torch is a CUDA build (torch 2.13.0: CUDA 13.0, which
# needs an NVIDIA driver >= 580). For older drivers pick a PyTorch wheel index, e.g.
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 ...
# Everything the app reads at run time is inside the image: the bundled model folders
# (harmonize_bids/data/, package data), deepbet's weights (inside its wheel), nilearn's
# ICBM152 template (inside its wheel) and the bids-validator-deno binary (inside its
# wheel). The last build step proves it with the network switched off.

ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim-bookworm

# --- builder: a virtual environment with torch, the app and its dependencies ----------
FROM ${BASE_IMAGE} AS builder

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the chosen index, so that installing the app keeps this build.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# Only what the wheel is built from (tests/packaging/test_install.py builds the same files).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY harmonize_bids ./harmonize_bids
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install "torch==${TORCH_VERSION}" /wheels/harmonize_bids-*.whl

# --- runtime: the environment, a non-root user, nothing else ---------------------------
FROM ${BASE_IMAGE} AS runtime

ARG IMAGE=ghcr.io/harmonize-bids/harmonize-bids
ARG VERSION=0.1.0
ARG BUILD_DATE=unknown
ARG VCS_REF=unknown

LABEL org.opencontainers.image.title="harmonize_bids" \
      org.opencontainers.image.description="BIDS App: diffusion-model contrast harmonization of T1w MPRAGE between 1.5 T and 3 T" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="https://github.com/harmonize-bids/harmonize_bids" \
      org.opencontainers.image.url="https://github.com/harmonize-bids/harmonize_bids" \
      org.opencontainers.image.documentation="https://github.com/harmonize-bids/harmonize_bids#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="harmonize_bids developers"

COPY --from=builder /opt/venv /opt/venv

RUN useradd --create-home --home-dir /home/harmonize --uid 1000 --user-group \
        --shell /bin/bash harmonize \
    && mkdir -p /home/harmonize/.config/matplotlib \
    && chown -R harmonize:harmonize /home/harmonize \
    && chmod -R a+rwX /home/harmonize

# HOME and MPLCONFIGDIR are writable for any uid (docker run -u "$(id -u):$(id -g)").
# One thread per process by default: the app sets torch's threads per nipype node from
# --omp-nthreads, and these stop BLAS in MultiProc workers from oversubscribing the cores.
# NVIDIA_*: what the NVIDIA container toolkit exposes with `docker run --gpus all`.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/harmonize \
    MPLCONFIGDIR=/home/harmonize/.config/matplotlib \
    NIPYPE_NO_ET=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONNOUSERSITE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HARMONIZE_BIDS_CONTAINER_TYPE=docker \
    HARMONIZE_BIDS_CONTAINER_TAG="${IMAGE}:${VERSION}"

USER 1000:1000
WORKDIR /home/harmonize

# Offline check at build time: everything the app loads is in the image.
RUN --network=none harmonize-bids --version \
    && bids-validator-deno --version \
    && python -c "from deepbet import BrainExtraction; BrainExtraction(no_gpu=True)" \
    && python -c "from harmonize_bids.phantom.anatomy import load_template; load_template(4)"

ENTRYPOINT ["harmonize-bids"]
CMD ["--help"]
