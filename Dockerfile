# syntax=docker/dockerfile:1
# portcullis container image: a release build on the Rust image, copied into a slim Debian
# runtime that runs it as a non-root user. Templates and migrations are compiled into the binary,
# so the runtime image holds only the binary, CA roots and time zones.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out of the
# cached target dir in the same step because the mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/portcullis /usr/local/bin/portcullis

FROM debian:bookworm-slim
# curl is only for the health check below.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 portcullis \
    && useradd --system --uid 10001 --gid portcullis --home-dir /var/lib/portcullis \
        --shell /usr/sbin/nologin portcullis \
    && mkdir -p /etc/portcullis /var/lib/portcullis/data \
    && chown -R portcullis:portcullis /var/lib/portcullis
COPY --from=builder /usr/local/bin/portcullis /usr/local/bin/portcullis

USER portcullis:portcullis
# Relative paths in the config (e.g. sqlite://data/audit.db) resolve here; mount a volume on data/.
WORKDIR /var/lib/portcullis
VOLUME ["/var/lib/portcullis/data"]
EXPOSE 8080 9090
# The admin listener answers on loopback inside the container whether it binds 127.0.0.1 or 0.0.0.0.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["portcullis"]
CMD ["serve", "--config", "/etc/portcullis/config.toml"]
