# syntax=docker/dockerfile:1
# Build: docker build -t authd .   Run: see docker-compose.yml.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The workspace's other members and bench targets must exist for cargo to read the manifest.
COPY load-tests ./load-tests
COPY benches ./benches
COPY src ./src
COPY sql ./sql
COPY config ./config
COPY templates ./templates
RUN cargo build --release --locked --bin authd && strip target/release/authd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin authd
WORKDIR /app
COPY --from=build /src/target/release/authd /usr/local/bin/authd
COPY config ./config
# Without DATABASE_URL authd keeps its embedded SQLite database here: mount a volume to keep it.
RUN mkdir -p /app/data && chown authd /app/data
VOLUME ["/app/data"]
USER authd
ENV AUTHD_ENV=production \
    AUTHD_CONFIG_DIR=/app/config
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT:-8080}/health/live" || exit 1
ENTRYPOINT ["authd"]
CMD ["serve"]
