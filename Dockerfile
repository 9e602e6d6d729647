# prunerd's container image.
#
#   CPU (the default target; built and run on Debian 12 by deploy/docker/image-test.sh):
#     docker build -t prunerd:0.1.0 .
#     podman build --format docker --pull=never -t prunerd:0.1.0 .     (no registry: see README)
#   CUDA (target runtime-cuda; NOT built or run on the project's machines, which have no
#   registry and no GPU; it follows bench/gpu/build.sh, the build that runs on the GPU host):
#     make gpu-debs        # once, on a Debian 12 machine: Debian's gRPC stack into .gpu/
#     docker build --target runtime-cuda -t prunerd:0.1.0-cuda .
#
# The runtime stages hold the runtime libraries, the two binaries and their small scripts (the
# entrypoint, the health check, prune-gate from deploy/ci), and nothing of the build: a non-root
# user (prunerd, uid/gid 10001), /var/lib/prunerd as the data volume, gRPC on 50051 and HTTP
# (/metrics /healthz /readyz) on 9464, a HEALTHCHECK on /healthz.
# Configuration: /etc/prunerd/prunerd.json (mount your own, or PRUNERD_CONFIG=path), PRUNERD_<FLAG>
# environment variables, and `prunerd serve` flags as arguments; see deploy/docker/entrypoint.sh.
# The daemon refuses plaintext gRPC on 0.0.0.0: give it --tls-cert/--tls-key (PRUNERD_TLS_CERT,
# PRUNERD_TLS_KEY), or PRUNERD_ALLOW_INSECURE_REMOTE=true on a network you trust.
# Give `docker stop`/`docker run` a timeout above the shutdown grace (60s in the default
# config): --stop-timeout 90.

ARG CUDA_DEVEL_IMAGE=docker.io/nvidia/cuda:13.0.0-devel-ubuntu24.04
ARG CUDA_BASE_IMAGE=docker.io/nvidia/cuda:13.0.0-base-ubuntu24.04

# ---------------------------------------------------------------------------------------------
# CPU builder: Debian 12 with the -dev packages of .ci/install-deps.sh (the list CI uses).
FROM docker.io/library/debian:12 AS builder
ENV DEBIAN_FRONTEND=noninteractive
COPY .ci/install-deps.sh /src/.ci/install-deps.sh
RUN bash /src/.ci/install-deps.sh && \
    apt-get install -y -qq --no-install-recommends binutils ccache >/dev/null && \
    rm -rf /var/lib/apt/lists/*
COPY . /src
# The ccache mount only speeds up rebuilds; the image does not depend on it.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
      -DPRUNERD_BUILD_TESTS=OFF -DPRUNERD_BUILD_BENCH=OFF >/dev/null && \
    cmake --build /build -j"$(nproc)" --target prunerd prunectl && \
    install -D -m 0755 -t /out/rootfs/usr/local/bin /build/bin/prunerd /build/bin/prunectl && \
    install -D -m 0755 /src/deploy/docker/entrypoint.sh /out/rootfs/usr/local/bin/prunerd-entrypoint && \
    install -D -m 0755 /src/deploy/docker/healthcheck.sh /out/rootfs/usr/local/bin/prunerd-healthcheck && \
    install -D -m 0755 /src/deploy/ci/prune-gate.sh /out/rootfs/usr/local/bin/prune-gate && \
    install -D -m 0644 /src/deploy/docker/prunerd.json /out/rootfs/etc/prunerd/prunerd.json && \
    bash /src/deploy/docker/runtime-packages.sh /build/bin/prunerd /build/bin/prunectl \
      > /out/runtime-packages.txt && \
    echo "runtime packages:" $(cat /out/runtime-packages.txt)

# ---------------------------------------------------------------------------------------------
# CPU runtime: the packages that own the libraries the binaries link (apt adds their
# dependencies), the serial OpenBLAS as libblas.so.3 (toolchain.md G3: the threaded builds'
# TLS breaks the HTTP endpoint's threads; reference BLAS is 10x slower), the binaries. dpkg
# leaves out the documentation, manuals and translations of what it installs here (about
# 100 MB), keeping the copyright files.
FROM docker.io/library/debian:12 AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="prunerd" \
      org.opencontainers.image.description="Pruning as a service for LLaMA-family models (CPU)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=builder /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
      'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/locale/*' \
      > /etc/dpkg/dpkg.cfg.d/prunerd-slim && \
    apt-get update -qq && \
    xargs -a /tmp/runtime-packages.txt apt-get install -y -qq --no-install-recommends \
      libopenblas0-serial >/dev/null && \
    update-alternatives --set libblas.so.3-x86_64-linux-gnu \
      /usr/lib/x86_64-linux-gnu/openblas-serial/libblas.so.3 && \
    update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
      /usr/lib/x86_64-linux-gnu/openblas-serial/liblapack.so.3 && \
    apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/* \
      /tmp/runtime-packages.txt && \
    groupadd --gid 10001 prunerd && \
    useradd --uid 10001 --gid prunerd --home-dir /var/lib/prunerd --no-create-home \
      --no-log-init --shell /usr/sbin/nologin prunerd && \
    install -d -o prunerd -g prunerd -m 0750 /var/lib/prunerd && \
    install -d -m 0755 /models /etc/prunerd/datasets
COPY --from=builder /out/rootfs/ /
# Fails the build if a library is missing, and shows what the image runs.
RUN ! ldd /usr/local/bin/prunerd /usr/local/bin/prunectl | grep 'not found' && \
    prunerd version
USER 10001:10001
WORKDIR /var/lib/prunerd
VOLUME ["/var/lib/prunerd"]
EXPOSE 50051 9464
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/prunerd-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/prunerd-entrypoint"]
CMD []

# ---------------------------------------------------------------------------------------------
# CUDA builder, as on the GPU host (bench/gpu/build.sh, ../shared/gpu-host/README.md): Ubuntu
# 24.04 with CUDA 13 and nvcc (the engine's fused kernels are built), the CUDA libtorch of
# pip's torch 2.11.0+cu130 in a venv, and Debian 12's gRPC, Abseil, prometheus-cpp, cpp-httplib,
# nlohmann-json and sqlite packages from .gpu/debs (`make gpu-debs`) unpacked into a prefix by
# .gpu/env.sh. Ubuntu gives what the GPU host already had: protobuf 3.21, OpenSSL, zlib, gtest.
FROM ${CUDA_DEVEL_IMAGE} AS builder-cuda
ARG TORCH_VERSION=2.11.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends python3 python3-venv cmake g++ make \
      pkg-config protobuf-compiler libprotobuf-dev libssl-dev zlib1g-dev libbrotli-dev \
      libgtest-dev libgmock-dev git ca-certificates >/dev/null && \
    rm -rf /var/lib/apt/lists/* && \
    python3 -m venv /opt/venv && \
    /opt/venv/bin/pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
ENV PATH=/opt/venv/bin:$PATH
COPY . /src
WORKDIR /src
RUN test -d .gpu/debs -a -f .gpu/env.sh || \
      { echo "run 'make gpu-debs' on a Debian 12 machine first (fills .gpu/)"; exit 1; } && \
    GPU_PFX=/opt/gpu-prefix bash bench/gpu/build.sh prunerd prunectl || \
      { tail -n 50 /tmp/build.log; exit 1; } && \
    torch_lib=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib && \
    site=$(dirname "$(dirname "$torch_lib")") && \
    mkdir -p /out/rootfs && \
    tar -C / -c "${torch_lib#/}" "${site#/}/nvidia" opt/gpu-prefix/usr/lib/x86_64-linux-gnu \
      | tar -C /out/rootfs -x && \
    install -D -m 0755 -t /out/rootfs/usr/local/bin build-gpu/bin/prunerd build-gpu/bin/prunectl && \
    install -D -m 0755 deploy/docker/entrypoint.sh /out/rootfs/usr/local/bin/prunerd-entrypoint && \
    install -D -m 0755 deploy/docker/healthcheck.sh /out/rootfs/usr/local/bin/prunerd-healthcheck && \
    install -D -m 0755 deploy/ci/prune-gate.sh /out/rootfs/usr/local/bin/prune-gate && \
    install -D -m 0644 deploy/docker/prunerd.json /out/rootfs/etc/prunerd/prunerd.json && \
    echo "$torch_lib:/opt/gpu-prefix/usr/lib/x86_64-linux-gnu" > /out/ld-library-path

# CUDA runtime: CUDA's base image (the driver comes from the NVIDIA container toolkit at run
# time; cuBLAS, cuDNN and the rest come with pip's torch, at the paths its RUNPATHs expect),
# libtorch and Debian's libraries at the paths the build used.
FROM ${CUDA_BASE_IMAGE} AS runtime-cuda
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="prunerd" \
      org.opencontainers.image.description="Pruning as a service for LLaMA-family models (CUDA)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends libprotobuf32t64 libssl3t64 zlib1g \
      libbrotli1 libsqlite3-0 >/dev/null && \
    apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/* && \
    groupadd --gid 10001 prunerd && \
    useradd --uid 10001 --gid prunerd --home-dir /var/lib/prunerd --no-create-home \
      --no-log-init --shell /usr/sbin/nologin prunerd && \
    install -d -o prunerd -g prunerd -m 0750 /var/lib/prunerd && \
    install -d -m 0755 /models /etc/prunerd/datasets
COPY --from=builder-cuda /out/rootfs/ /
# Must match /out/ld-library-path of the builder (pip's torch under python3.12 on Ubuntu 24.04).
ENV LD_LIBRARY_PATH=/opt/venv/lib/python3.12/site-packages/torch/lib:/opt/gpu-prefix/usr/lib/x86_64-linux-gnu
COPY --from=builder-cuda /out/ld-library-path /etc/prunerd/ld-library-path
RUN test "$(cat /etc/prunerd/ld-library-path)" = "$LD_LIBRARY_PATH" && \
    ! ldd /usr/local/bin/prunerd /usr/local/bin/prunectl | grep 'not found' && \
    prunerd version
USER 10001:10001
WORKDIR /var/lib/prunerd
VOLUME ["/var/lib/prunerd"]
EXPOSE 50051 9464
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/prunerd-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/prunerd-entrypoint"]
CMD []

# ---------------------------------------------------------------------------------------------
# The default target (last stage): the CPU image.
FROM runtime
