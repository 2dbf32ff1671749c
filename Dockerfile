# syntax=docker/dockerfile:1

# ---- build ------------------------------------------------------------------
# rust:1.95-bookworm has gcc, make and perl: enough for the bundled SQLite,
# the bundled libpq and its vendored OpenSSL.
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# cargo-chef reduces the workspace to a recipe of its dependencies, so the
# dependency layer below is rebuilt only when Cargo.toml or Cargo.lock change.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin usergate

# The real sources. migrations/ must be here: they are embedded at compile
# time (diesel_migrations::embed_migrations!).
COPY . .
RUN cargo build --release --locked --bin usergate \
 && install -m 0755 target/release/usergate /usr/local/bin/usergate

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim

# reqwest (rustls) reads the system CA store to fetch the Auth0 JWKS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 usergate \
 && useradd --system --uid 10001 --gid usergate --home-dir /app --shell /usr/sbin/nologin usergate \
 && mkdir -p /app/data \
 && chown -R usergate:usergate /app

COPY --from=build /usr/local/bin/usergate /usr/local/bin/usergate

WORKDIR /app
USER usergate

# SQLite (the default backend) keeps its file in the volume; set a
# postgres://… DATABASE_URL to use PostgreSQL instead.
VOLUME /app/data
ENV HOST=0.0.0.0 \
    PORT=8000 \
    RUST_LOG=info \
    DATABASE_URL=sqlite:///app/data/usergate.db

EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/usergate", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/usergate"]
CMD ["serve"]
