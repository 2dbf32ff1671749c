//! Wiring only: one function builds the app for production and for tests.

use std::{
    net::{SocketAddr, TcpListener},
    sync::Arc,
    time::Duration,
};

use actix_cors::Cors;
use actix_web::{
    App, HttpResponse, HttpServer,
    dev::Server,
    http::header,
    middleware::{Condition, ErrorHandlers, from_fn},
    web,
};
use anyhow::Context;

use crate::{
    auth::{
        Dpop, Issuers, TokenCache, Verifier, bearer_auth,
        replay::{InProcessReplayStore, ReplayStore},
    },
    config::{HttpSettings, Listen, Settings, reachable_host},
    db::{self, DatabaseUrl, DbPool, replay::DbReplayStore},
    dev_issuer::DevKey,
    discovery::{self, DevJwks, ProtectedResource},
    error::ApiError,
    health::{self, Draining},
    http::{
        PublicUrl, RequestError, TrustedProxies,
        access_log::{self, ReplicaId},
        headers::middleware as security_headers,
        problem::problem_fallback,
        request_id::{self, X_REQUEST_ID},
        routes::get_resource as get,
    },
    metrics,
    openapi::pages::{self, Docs},
    users::{self, Sightings, UserCache},
};

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    draining: Draining,
    drain: Duration,
    dev_key: Option<Arc<DevKey>>,
    /// `/metrics` on its own listener (`METRICS_ADDR`), and its port.
    metrics: Option<(Server, u16)>,
}

impl Application {
    /// Connects the pool, runs migrations, starts the JWKS actor and binds
    /// `HOST:PORT` (port 0 picks a free one). Must run inside the actix runtime.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = migrated_pool(&settings).await?;
        let cache = TokenCache::default();
        let (keys, dev_key) = key_store(&settings, &cache)?;
        let verifier = Verifier::new(&settings.auth, keys, cache);

        let (listener, port) = bind(&settings.http.listen)?;
        // Links fall back to this authority when a request has no usable Host.
        let authority = format!("{}:{port}", reachable_host(&settings.http.listen.host));
        let draining = Draining::default();
        // Every blocking task holds a pooled connection: more threads would only wait.
        let pool_size = settings.database.pool_size as usize;
        let drain = settings.http.shutdown_drain;
        let metrics_addr = settings.http.metrics_addr;

        let users = UserCache::default();
        users::invalidation::start(&settings.database.url, &users)
            .await
            .context("starting the user cache invalidation listener")?;
        let state = State {
            dpop: dpop_checker(&settings, &pool),
            public_url: web::Data::new(settings.http.public_url.clone()),
            metrics_on_api: metrics_addr.is_none(),
            metadata: web::Data::new(ProtectedResource::of(&settings.auth, settings.dpop.mode)),
            trusted_proxies: web::Data::new(settings.http.trusted_proxies.clone()),
            http: web::Data::new(settings.http),
            sightings: web::Data::new(Sightings::new(pool.clone())),
            pool: web::Data::new(pool),
            users: web::Data::new(users),
            verifier: web::Data::new(verifier),
            draining: web::Data::new(draining.clone()),
            metrics: web::Data::new(metrics::handle()),
            docs: web::Data::new(Docs::new(metrics_addr.is_none())),
            dev_jwks: dev_key.as_ref().map(|k| web::Data::new(DevJwks::of(k))),
            replica: web::Data::new(replica_id(port)),
        };
        let metrics = metrics_addr
            .map(|addr| metrics_server(addr, &state))
            .transpose()?;
        let server = HttpServer::new(move || state.clone().app())
            .server_hostname(authority)
            .listen(listener)?
            .disable_signals()
            .worker_max_blocking_threads(pool_size)
            .shutdown_timeout(30)
            .run();
        Ok(Self {
            port,
            server,
            draining,
            drain,
            dev_key,
            metrics,
        })
    }

    /// The port of the `/metrics` listener, when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The dev signing key, in dev mode.
    pub fn dev_key(&self) -> Option<Arc<DevKey>> {
        self.dev_key.clone()
    }

    /// Serves until SIGTERM or SIGINT; then `/readyz` answers 503 for the
    /// drain period while requests are still served, then the server stops,
    /// finishing in-flight requests.
    pub async fn run(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let (draining, drain) = (self.draining, self.drain);
        tokio::spawn(async move {
            wait_for_signal().await;
            log::info!("shutdown requested: draining for {}s", drain.as_secs());
            draining.start();
            tokio::time::sleep(drain).await;
            handle.stop(true).await;
            if let Some(metrics) = metrics {
                metrics.stop(true).await;
            }
        });
        self.server.await
    }
}

/// A one-worker server answering `GET /metrics` only, bound to `addr`.
fn metrics_server(addr: SocketAddr, state: &State) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("METRICS_ADDR: cannot listen on {addr}"))?;
    let port = listener.local_addr()?.port();
    let (handle, pool, verifier) = (
        state.metrics.clone(),
        state.pool.clone(),
        state.verifier.clone(),
    );
    let server = HttpServer::new(move || {
        App::new()
            .app_data(handle.clone())
            .app_data(pool.clone())
            .app_data(verifier.clone())
            .route(metrics::PATH, web::get().to(metrics::render))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NoRoute)
            }))
            .wrap(from_fn(security_headers))
    })
    .workers(1)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    Ok((server, port))
}

/// The pool, with the schema migrated.
async fn migrated_pool(settings: &Settings) -> anyhow::Result<DbPool> {
    let database = &settings.database;
    let pool = db::build_pool(&database.url, database.pool_size);
    let migrate_pool = pool.clone();
    web::block(move || db::run_migrations(&migrate_pool))
        .await
        .context("migrations were interrupted")?
        .with_context(|| {
            format!(
                "DATABASE_URL: cannot prepare the {} database",
                database.url.backend()
            )
        })?;
    Ok(pool)
}

/// The API's listener on `HOST:PORT`, and the port it got (port 0 picks one).
fn bind(listen: &Listen) -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((listen.host.as_str(), listen.port)).with_context(|| {
        format!(
            "HOST/PORT: cannot listen on {}:{}",
            listen.host, listen.port
        )
    })?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// The proof checker: `jti`s remembered in the table every replica shares
/// on PostgreSQL, in process on SQLite (one process per file).
fn dpop_checker(settings: &Settings, pool: &DbPool) -> Dpop {
    let leeway = Duration::from_secs(settings.auth.leeway_secs);
    let max_age = settings.dpop.proof_max_age;
    let store: Arc<dyn ReplayStore> = match settings.database.url {
        DatabaseUrl::Postgres(_) => Arc::new(DbReplayStore::start(pool.clone())),
        DatabaseUrl::Sqlite(_) => Arc::new(InProcessReplayStore::new()),
    };
    Dpop::new(settings.dpop.mode, max_age, leeway, store)
}

/// Each issuer's keys through its JWKS actor, or the dev key in dev mode.
fn key_store(
    settings: &Settings,
    cache: &TokenCache,
) -> anyhow::Result<(Issuers, Option<Arc<DevKey>>)> {
    if settings.dev.enabled {
        let dev_key =
            Arc::new(DevKey::load_or_create(&settings.dev.key_path).context("DEV_KEY_PATH")?);
        let keys = dev_key.key_set().context("the dev key's JWKS")?;
        let issuers = Issuers::fixed(settings.auth.primary_issuer(), keys);
        Ok((issuers, Some(dev_key)))
    } else {
        let issuers = Issuers::spawn(&settings.auth, cache).context("building the JWKS client")?;
        Ok((issuers, None))
    }
}

/// The host name (each container's own) and the port (each local replica's).
fn replica_id(port: u16) -> ReplicaId {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "usergate".to_owned());
    ReplicaId(format!("{host}:{port}"))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What every worker's app shares.
#[derive(Clone)]
struct State {
    http: web::Data<HttpSettings>,
    public_url: web::Data<Option<PublicUrl>>,
    /// Whether `/metrics` is served on the API port (no `METRICS_ADDR`).
    metrics_on_api: bool,
    trusted_proxies: web::Data<TrustedProxies>,
    metadata: web::Data<ProtectedResource>,
    pool: web::Data<DbPool>,
    users: web::Data<UserCache>,
    sightings: web::Data<Sightings>,
    verifier: web::Data<Verifier>,
    dpop: Dpop,
    draining: web::Data<Draining>,
    metrics: web::Data<metrics_exporter_prometheus::PrometheusHandle>,
    docs: web::Data<Docs>,
    dev_jwks: Option<web::Data<DevJwks>>,
    replica: web::Data<ReplicaId>,
}

impl State {
    fn cors(&self) -> Cors {
        let cors = Cors::default()
            .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
            .allowed_headers([
                header::AUTHORIZATION,
                header::HeaderName::from_static("dpop"),
                header::CONTENT_TYPE,
                X_REQUEST_ID.clone(),
            ])
            .expose_headers([header::LOCATION, X_REQUEST_ID.clone()])
            .max_age(3600)
            .block_on_origin_mismatch(false);
        self.http
            .cors_allowed_origins
            .iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin))
    }

    /// The routes outside `/users`: probes, metrics, metadata, docs. Each
    /// is a resource, so that another method is 405 with `Allow`, not 404.
    fn platform_routes(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.docs.clone())
            .service(get("/healthz", health::healthz))
            .service(get("/readyz", health::readyz))
            .service(get(
                "/.well-known/oauth-protected-resource",
                discovery::protected_resource,
            ))
            .service(get(pages::DOCUMENT_PATH, pages::document))
            .service(get("/docs", pages::redirect))
            .service(get("/docs/{file:.*}", pages::file));
        if self.metrics_on_api {
            cfg.service(get(metrics::PATH, metrics::render));
        }
        if let Some(jwks) = &self.dev_jwks {
            cfg.app_data(jwks.clone())
                .service(get("/.well-known/jwks.json", discovery::dev_jwks));
        }
    }

    fn app(
        self,
    ) -> App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        let cors = self.cors();
        let has_cors = !self.http.cors_allowed_origins.is_empty();
        App::new()
            .app_data(self.trusted_proxies.clone())
            .app_data(self.public_url.clone())
            .app_data(self.metadata.clone())
            .app_data(self.pool.clone())
            .app_data(self.users.clone())
            .app_data(self.sightings.clone())
            .app_data(self.verifier.clone())
            // Read by every rejection, to list the challenges the mode allows.
            .app_data(web::Data::new(self.dpop.mode()))
            .app_data(self.draining.clone())
            .app_data(self.metrics.clone())
            .app_data(self.replica.clone())
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                ApiError::from(RequestError::BadRequest(format!(
                    "invalid query string: {err}"
                )))
                .into()
            }))
            // First: the hot path is matched before the docs' regex route.
            .service(
                web::scope("/users")
                    .wrap(from_fn(users::current_user::middleware))
                    .wrap(bearer_auth(
                        self.verifier.get_ref().clone(),
                        self.dpop.clone(),
                    ))
                    .configure(users::handlers::routes),
            )
            .configure(|cfg| self.platform_routes(cfg))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NoRoute)
            }))
            .wrap(Condition::new(has_cors, cors))
            // Answers made outside our handlers (CORS refusals, actix's own
            // errors) become problem+json too.
            .wrap(ErrorHandlers::new().default_handler(problem_fallback))
            .wrap(from_fn(security_headers))
            .wrap(from_fn(metrics::middleware))
            .wrap(from_fn(request_id::middleware))
            .wrap(Condition::new(
                // No access-log work at all when its lines would be filtered out.
                log::log_enabled!(target: access_log::TARGET, log::Level::Info),
                from_fn(access_log::middleware),
            ))
    }
}
