//! The `usergate` command line.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use usergate::{
    Application, Settings,
    auth::{explain, issuers, key_set},
    config::{
        AuthSettings, DEV_AUDIENCE, DatabaseSettings, DevSettings, Env, Listen, process_env,
        reachable_host,
    },
    db,
    dev_issuer::{DevKey, MintRequest, all_permissions},
    dpop_key::DpopKey,
    logging::{self, LogFormat},
};

// Every request allocates and frees many small values (a token's claims, a
// row, its JSON), some across threads: with mimalloc's per-thread free
// lists, a cold request costs 9-23 % less CPU than with glibc's malloc
// (bench/README.md, the third pass).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An Auth0-protected users API: verifies access tokens against the tenant's
/// keys and keeps a local users table in step with the identity provider.
///
/// Configuration comes from the environment (and `.env`): see README.md.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// Trust a local dev signing key instead of an Auth0 tenant, and
        /// print a ready-to-use curl line. Never for production.
        #[arg(long)]
        dev: bool,
    },
    /// Print a token signed by the dev key (the one `serve --dev` trusts).
    MintToken(MintArgs),
    /// Print a DPoP proof (RFC 9449) for one request, signed by a DPoP key.
    DpopProof {
        /// The DPoP key file (P-256 PKCS#8 PEM); created when missing.
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        /// The request's HTTP method (`htm`).
        #[arg(long)]
        method: String,
        /// The request's URL (`htu`; its query and fragment are left out).
        #[arg(long)]
        url: url::Url,
        /// The access token sent with the proof (`ath`).
        #[arg(long)]
        token: Option<String>,
    },
    /// Run pending database migrations and exit.
    Migrate,
    /// Say whether a token would be accepted, and if not, exactly why.
    ExplainToken {
        /// The token, or `-` (the default) to read it from standard input.
        #[arg(default_value = "-")]
        token: String,
        /// Check against the dev key and issuer instead of the tenant.
        #[arg(long)]
        dev: bool,
    },
    /// GET the local /healthz; exit 0 when healthy (for Docker HEALTHCHECK).
    Healthcheck,
}

/// What `mint-token` puts in the token.
#[derive(Args)]
struct MintArgs {
    /// The subject (`sub` claim).
    #[arg(long)]
    sub: String,
    /// Space-separated `scope` claim, e.g. "read:users create:users".
    #[arg(long)]
    scope: Option<String>,
    /// Comma-separated `permissions` claim (Auth0 RBAC).
    #[arg(long, value_delimiter = ',')]
    permissions: Option<Vec<String>>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Audience; defaults to the first configured one.
    #[arg(long)]
    aud: Option<String>,
    /// One more claim as NAME=JSON, e.g. org_id='"org_1"' (repeatable).
    #[arg(long = "claim", value_name = "NAME=JSON")]
    claims: Vec<String>,
    /// The header's typ, e.g. at+jwt (RFC 9068); by default `JWT`, or
    /// `at+jwt` when AUTH_REQUIRE_AT_JWT=true.
    #[arg(long)]
    typ: Option<String>,
    /// Bind the token to this DPoP key (`cnf.jkt`); the key file is
    /// created when missing.
    #[arg(long, value_name = "PATH")]
    dpop_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    // A missing .env is normal; a broken one is worth a line.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: .env: {e}");
        return ExitCode::FAILURE;
    }
    match LogFormat::parse(std::env::var("LOG_FORMAT").ok().as_deref()) {
        Ok(format) => logging::init(format),
        Err(problem) => {
            eprintln!("error: LOG_FORMAT: {problem}");
            return ExitCode::FAILURE;
        }
    }
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve { dev: false }) {
        Command::Serve { dev } => serve(dev),
        Command::MintToken(args) => mint_token(args),
        Command::DpopProof {
            key,
            method,
            url,
            token,
        } => dpop_proof(&key, &method, &url, token.as_deref()),
        Command::Migrate => migrate(),
        Command::ExplainToken { token, dev } => explain_token(&token, dev),
        Command::Healthcheck => healthcheck(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the variable or step at fault and what is wrong.
            // libpq's messages span lines; keep the promise of one line.
            let message = format!("{e:#}");
            eprintln!(
                "error: {}",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

fn serve(dev: bool) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env(dev)?;
    actix_web::rt::System::new().block_on(async move {
        announce(&settings);
        let (host, auth) = (settings.http.listen.host.clone(), settings.auth.clone());
        let app = Application::build(settings).await?;
        if let Some(key) = app.dev_key() {
            let token = key.mint(&MintRequest {
                sub: "dev|local-user".into(),
                iss: auth.primary_issuer().to_owned(),
                aud: auth
                    .audiences
                    .first()
                    .cloned()
                    .unwrap_or_else(|| DEV_AUDIENCE.into()),
                permissions: Some(all_permissions()),
                ttl: Duration::from_secs(24 * 3600),
                typ: dev_typ(&auth, None),
                ..MintRequest::default()
            })?;
            println!(
                "curl -H 'Authorization: Bearer {token}' http://{}:{}/users/me",
                reachable_host(&host),
                app.port()
            );
        }
        app.run().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The start-up banner and lines: dev mode, what is trusted, and how.
fn announce(settings: &Settings) {
    if settings.dev.enabled {
        eprintln!("{}", "*".repeat(72));
        eprintln!(
            "* DEV MODE: tokens signed by the local key {} are trusted.",
            settings.dev.key_path.display()
        );
        eprintln!("* Never run this in production.");
        eprintln!("{}", "*".repeat(72));
        if !settings.dev.ignored.is_empty() {
            log::warn!(
                "dev mode ignores {}: tokens are checked against the local dev issuer {}",
                settings.dev.ignored.join(", "),
                settings.auth.primary_issuer()
            );
        }
    } else if settings.http.public_url.is_none() {
        log::warn!(
            "PUBLIC_URL is not set: absolute URLs (links, Location, challenges) and the \
             DPoP htu check are built from each request's Host header; set it to the URL \
             clients use"
        );
    }
    log::info!(
        "usergate starting on {}:{} with {} ({})",
        settings.http.listen.host,
        settings.http.listen.port,
        settings.database.url.backend(),
        settings.auth.issuers.join(", ")
    );
    log::info!(
        "permissions come from {} (AUTH_PERMISSIONS_FROM){}",
        settings.auth.permissions_from.describe(),
        if settings.auth.require_at_jwt {
            "; only at+jwt access tokens are accepted (AUTH_REQUIRE_AT_JWT)"
        } else {
            ""
        }
    );
}

/// A dev token's `typ`: the one asked for, else `at+jwt` when only those
/// are accepted, so that `serve --dev` takes what `mint-token` prints.
fn dev_typ(auth: &AuthSettings, asked: Option<String>) -> Option<String> {
    asked.or_else(|| auth.require_at_jwt.then(|| "at+jwt".to_owned()))
}

/// `--claim NAME=JSON` values, each checked: one clear line for a bad one.
fn parse_claims(claims: &[String]) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut parsed = serde_json::Map::new();
    for claim in claims {
        let Some((name, json)) = claim.split_once('=').filter(|(name, _)| !name.is_empty()) else {
            anyhow::bail!("--claim {claim}: expected NAME=JSON, e.g. org_id='\"org_1\"'");
        };
        let value = serde_json::from_str(json).with_context(|| {
            format!("--claim {name}: not JSON (a string needs its quotes: {name}='\"…\"')")
        })?;
        parsed.insert(name.to_owned(), value);
    }
    Ok(parsed)
}

fn mint_token(args: MintArgs) -> anyhow::Result<ExitCode> {
    let claims = parse_claims(&args.claims)?;
    let cnf = match &args.dpop_key {
        Some(path) => Some(
            DpopKey::load_or_create(path)
                .context("--dpop-key")?
                .confirmation(),
        ),
        None => None,
    };
    let env = Env::new(&process_env);
    let auth = AuthSettings::from_env(&env, true, Listen::from_env(&env)?.port)?;
    let dev = DevSettings::from_env(&env, true);
    let key = DevKey::load_or_create(&dev.key_path).context("DEV_KEY_PATH")?;
    let audience = args
        .aud
        .or_else(|| auth.audiences.first().cloned())
        .unwrap_or_else(|| DEV_AUDIENCE.into());
    let token = key.mint(&MintRequest {
        sub: args.sub,
        iss: auth.primary_issuer().to_owned(),
        aud: audience,
        scope: args.scope,
        permissions: args.permissions,
        cnf,
        ttl: Duration::from_secs(args.ttl),
        claims,
        typ: dev_typ(&auth, args.typ),
    })?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn dpop_proof(
    key: &Path,
    method: &str,
    url: &url::Url,
    token: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let key = DpopKey::load_or_create(key).context("--key")?;
    // Standard methods are upper case, as the server compares them.
    println!("{}", key.proof(&method.to_ascii_uppercase(), url, token)?);
    Ok(ExitCode::SUCCESS)
}

fn migrate() -> anyhow::Result<ExitCode> {
    let database = DatabaseSettings::from_env(&Env::new(&process_env))?;
    let pool = db::build_pool(&database.url, 1);
    db::run_migrations(&pool).context("DATABASE_URL")?;
    log::info!("migrations are up to date ({})", database.url.backend());
    Ok(ExitCode::SUCCESS)
}

fn explain_token(token: &str, dev: bool) -> anyhow::Result<ExitCode> {
    let token = if token == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("reading the token from standard input")?;
        buf
    } else {
        token.to_owned()
    };
    let env = Env::new(&process_env);
    let auth = AuthSettings::from_env(&env, dev, Listen::from_env(&env)?.port)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dev_key = if dev {
        // Read the key only: explaining a token must not create one.
        let path = DevSettings::from_env(&env, true).key_path;
        Some(
            DevKey::load(&path)
                .with_context(|| format!("DEV_KEY_PATH: no dev key at {}", path.display()))?,
        )
    } else {
        None
    };
    let client = key_set::http_client(&auth).context("building the JWKS client")?;
    // Only the configured issuer the token names is asked for its keys.
    let keys = async |issuer: &str| match &dev_key {
        Some(key) => key.key_set(),
        None => issuers::fetch(&client, issuer, auth.jwks_url.as_ref(), &auth.algorithms)
            .await
            .map(|(keys, _)| keys),
    };
    let explanation = runtime.block_on(explain::explain(&token, &auth, keys));
    for line in &explanation.lines {
        println!("{line}");
    }
    Ok(if explanation.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn healthcheck() -> anyhow::Result<ExitCode> {
    let listen = Listen::from_env(&Env::new(&process_env))?;
    let (host, port) = (reachable_host(&listen.host), listen.port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let healthy = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()?;
        let response = client
            .get(format!("http://{host}:{port}/healthz"))
            .send()
            .await?;
        Ok::<_, reqwest::Error>(response.status().is_success())
    });
    match healthy {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => {
            eprintln!("unhealthy: /healthz did not answer 200");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {}", e.without_url());
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_allocator_commits_memory_only_as_it_is_used() {
        // Set in .cargo/config.toml: eagerly committed arenas keep freed
        // pages resident. mimalloc.h numbers `mi_option_arena_eager_commit`
        // 4; libmimalloc-sys has no name for it.
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        // SAFETY: reads an option; mimalloc initialises them on first use.
        let eager = unsafe { libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT) };
        assert_eq!(
            eager, 0,
            "mimalloc is built with MI_DEFAULT_ARENA_EAGER_COMMIT=0"
        );
    }
}
