# event-syncer in a container: build with the Rust toolchain, run from
# debian-slim with the binary alone.
#
#   docker build -t event-syncer .
#   docker run -p 3031:3031 --ulimit nofile=1048576:1048576 event-syncer
#
# Checked by tests/proxies.rs (its stages, the paths it copies, EXPOSE and
# HEALTHCHECK); no Docker daemon ran where it was written, so it has not
# been built there.

FROM rust:1-bookworm AS build
WORKDIR /src
# Cargo.toml names the bench targets, so their sources come along.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin event-syncer \
    && strip target/release/event-syncer

FROM debian:bookworm-slim
RUN useradd --system --no-create-home --shell /usr/sbin/nologin event-syncer
COPY --from=build /src/target/release/event-syncer /usr/local/bin/event-syncer
USER event-syncer
# Inside a container the server must listen on every address.
ENV EVENT_SYNCER_LISTEN=0.0.0.0:3031
EXPOSE 3031
# The image has no curl: bash's /dev/tcp sends GET /healthz and the status
# line must say 200. The port follows EVENT_SYNCER_LISTEN.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${EVENT_SYNCER_LISTEN##*:} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
# SIGTERM drains: parked consumers get [], then exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/event-syncer"]
