# kvtier-store and kvtier-worker (CPU kernels). Multi-stage: the build stage runs the same
# set-up script as the README's `make` targets and CI (scripts/install_deps.sh), so the image
# is built the way CI builds; the runtime stage holds the binaries and their shared libraries.
#
#   docker build -t registry.example/kvtier:0.1.0 .
#   (for the CUDA kernels, build FROM nvidia/cuda:13.0.0-devel-ubuntu24.04 with the same steps)
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY . .
RUN bash scripts/install_deps.sh \
 && cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVTIER_BUILD_TESTS=OFF \
 && cmake --build /build --target kvtier-store kvtier-worker kvtierctl kvtier-worker-demo

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
# The shared libraries the binaries link (`ldd` of each, mapped to Debian 12 packages).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
      libabsl20220623 libc-ares2 libcivetweb1 libgrpc++1.51 libgrpc29 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprotobuf32 libre2-9 libssl3 \
      libstdc++6 libxxhash0 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/services/kvtier-store /build/services/kvtier-worker \
     /build/client/kvtierctl /build/client/kvtier-worker-demo /usr/local/bin/
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin kvtier
USER 10001
EXPOSE 50051 9091 50061 9092
ENTRYPOINT ["/usr/local/bin/kvtier-store"]
