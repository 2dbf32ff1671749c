//! A fleet as operators run it: three real replica processes on one
//! PostgreSQL behind a real HAProxy, started by `deploy/cluster.sh`, under
//! first-login races, rolling restarts, a crash, a database outage and an
//! admin's deactivation. PostgreSQL and HAProxy are required in CI.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use diesel::{Connection, RunQueryDsl, pg::PgConnection, sql_types::BigInt};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    db::{Backend, create_pg_database},
    process::binary,
};

const ADMIN: &[&str] = &["read:users", "create:users", "update:users", "delete:users"];

/// One fleet at a time: each is four processes on a two-core machine.
static ONE_FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fleet started by `deploy/cluster.sh up 3 --dev` in its own directory.
struct Fleet {
    dir: tempfile::TempDir,
    /// The balancer, `http://127.0.0.1:PORT`.
    url: String,
    /// The database every replica shares.
    database_url: String,
    client: reqwest::Client,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Fleet {
    /// A fleet of three on a fresh database, or `None` outside CI without PostgreSQL.
    async fn up() -> Option<Self> {
        let Backend::Postgres(base) = Backend::postgres()? else {
            unreachable!("Backend::postgres gives PostgreSQL")
        };
        if Command::new("haproxy").arg("-v").output().is_err() && std::env::var_os("CI").is_some() {
            panic!("CI is set but haproxy is not installed: the fleet tests must run in CI");
        }
        let database_url = create_pg_database(&base);
        let dir = tempfile::tempdir().expect("fleet dir");
        let mut fleet = Self {
            dir,
            url: String::new(),
            database_url,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
        };
        let out = fleet.script(&["up", "3", "--dev"]).await;
        fleet.url = out.trim().to_owned();
        assert!(
            fleet.url.starts_with("http://127.0.0.1:") && !fleet.url.ends_with('/'),
            "up prints the balancer's URL alone: {out:?}"
        );
        Some(fleet)
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.dir.path())
            .env("DATABASE_URL", &self.database_url)
            .env("USERGATE_BIN", binary())
            .env("SHUTDOWN_DRAIN_SECS", "2")
            .env("RUST_LOG", "warn")
            .env("DATABASE_POOL_SIZE", "4");
        command
    }

    /// Runs `deploy/cluster.sh ARGS`; returns its standard output.
    async fn script(&self, args: &[&str]) -> String {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster.sh");
        let mut command = self.command(&script);
        command.args(args);
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("cluster.sh runs");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "cluster.sh {args:?}: {stderr}");
        stdout
    }

    /// A token every replica accepts, minted like a user of the fleet would.
    fn token(&self, sub: &str, permissions: &[&str]) -> String {
        let mut command = self.command(&binary());
        command
            .env("PUBLIC_URL", &self.url)
            .args(["mint-token", "--sub", sub, "--permissions"])
            .arg(permissions.join(","));
        let out = command.output().expect("mint-token runs");
        assert!(out.status.success(), "mint-token: {:?}", out);
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// Each replica's own URL, from `status`.
    async fn replicas(&self) -> Vec<(String, String)> {
        self.script(&["status"])
            .await
            .lines()
            .map(|line| {
                let (url, state) = line.split_once(' ').expect("URL STATE");
                (url.to_owned(), state.to_owned())
            })
            .collect()
    }

    fn count_rows(&self) -> i64 {
        let mut conn = PgConnection::establish(&self.database_url).expect("database");
        diesel::sql_query("SELECT count(*) AS n FROM users")
            .get_result::<Count>(&mut conn)
            .expect("count")
            .n
    }

    fn sql(&self, statement: &str) {
        let base = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
        let mut admin = PgConnection::establish(&base).expect("admin connection");
        diesel::sql_query(statement)
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    fn database_name(&self) -> String {
        url::Url::parse(&self.database_url).expect("url").path()[1..].to_owned()
    }

    async fn me(&self, base: &str, token: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.client
            .get(format!("{base}/users/me"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
    }

    async fn rename(&self, token: &str, name: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.client
            .patch(format!("{}/users/me", self.url))
            .bearer_auth(token)
            .json(&json!({ "name": name }))
            .timeout(Duration::from_secs(10))
            .send()
            .await
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster.sh");
        let _ = self.command(&script).arg("down").output();
    }
}

/// What a steady client loop saw: requests sent, failures and when, and
/// each client's last acknowledged name.
#[derive(Default)]
struct Load {
    sent: AtomicUsize,
    failures: Mutex<Vec<(Instant, String)>>,
    acknowledged: Mutex<Vec<Option<String>>>,
}

/// `clients` loops of GET + PATCH through the balancer, no retries, until `stop`.
async fn steady_load(
    fleet: Arc<Fleet>,
    tokens: Vec<String>,
    stop: Arc<AtomicBool>,
    load: Arc<Load>,
) {
    *load.acknowledged.lock().expect("lock") = vec![None; tokens.len()];
    let loops = tokens.into_iter().enumerate().map(|(k, token)| {
        let (fleet, stop, load) = (fleet.clone(), stop.clone(), load.clone());
        async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::SeqCst) {
                seq += 1;
                let name = format!("client-{k}-{seq}");
                let answers = [
                    (None, fleet.me(&fleet.url, &token).await),
                    (Some(name.clone()), fleet.rename(&token, &name).await),
                ];
                for (renamed, answer) in answers {
                    load.sent.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Ok(r) if r.status().is_success() => {
                            if let Some(name) = renamed {
                                load.acknowledged.lock().expect("lock")[k] = Some(name);
                            }
                        }
                        Ok(r) => {
                            let why =
                                format!("{} {}", r.status(), r.text().await.unwrap_or_default());
                            load.failures
                                .lock()
                                .expect("lock")
                                .push((Instant::now(), why));
                        }
                        Err(e) => load
                            .failures
                            .lock()
                            .expect("lock")
                            .push((Instant::now(), e.to_string())),
                    }
                }
            }
        }
    });
    join_all(loops).await;
}

/// Tokens of `n` users who have each made a first request.
async fn users(fleet: &Fleet, prefix: &str, n: usize) -> Vec<String> {
    let tokens: Vec<String> = (0..n)
        .map(|i| fleet.token(&format!("auth0|{prefix}-{i}"), &[]))
        .collect();
    for token in &tokens {
        let r = fleet.me(&fleet.url, token).await.expect("first request");
        assert_eq!(r.status(), 200);
    }
    tokens
}

/// The name the database holds for `sub`.
fn stored_name(fleet: &Fleet, sub: &str) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        name: Option<String>,
    }
    let mut conn = PgConnection::establish(&fleet.database_url).expect("database");
    diesel::sql_query("SELECT name FROM users WHERE sub = $1")
        .bind::<diesel::sql_types::Text, _>(sub)
        .get_result::<Row>(&mut conn)
        .expect("row")
        .name
}

fn assert_acknowledged_writes_are_stored(fleet: &Fleet, prefix: &str, load: &Load) {
    for (k, name) in load.acknowledged.lock().expect("lock").iter().enumerate() {
        let Some(name) = name else { continue };
        assert_eq!(
            stored_name(fleet, &format!("auth0|{prefix}-{k}")).as_deref(),
            Some(name.as_str()),
            "client {k}: its last acknowledged PATCH is what the database holds"
        );
    }
}

// ------------------------------------------------------------------- (a)

#[actix_web::test]
async fn two_hundred_concurrent_first_logins_of_fifty_subjects_make_fifty_rows() {
    let _one = ONE_FLEET.lock().await;
    let Some(fleet) = Fleet::up().await else {
        return;
    };
    let tokens: Vec<String> = (0..50)
        .map(|i| fleet.token(&format!("auth0|first-{i}"), &[]))
        .collect();
    let answers = join_all((0..200).map(|i| fleet.me(&fleet.url, &tokens[i % 50]))).await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|r| r.map_or(0, |r| r.status().as_u16()))
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every first login answers 200: {statuses:?}"
    );
    assert_eq!(
        fleet.count_rows(),
        50,
        "one row per subject, whichever replica saw it first"
    );
}

// ------------------------------------------------------------------- (b)

#[actix_web::test]
async fn a_rolling_restart_under_load_fails_no_request_and_loses_no_write() {
    let _one = ONE_FLEET.lock().await;
    let Some(fleet) = Fleet::up().await else {
        return;
    };
    let fleet = Arc::new(fleet);
    let tokens = users(&fleet, "rolling", 6).await;
    let replicas: Vec<String> = fleet.replicas().await.into_iter().map(|(u, _)| u).collect();

    // Watch each replica's own /readyz: each must be seen draining.
    let stop = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(Mutex::new(vec![false; replicas.len()]));
    let watch = {
        let (fleet, stop, drained, replicas) = (
            fleet.clone(),
            stop.clone(),
            drained.clone(),
            replicas.clone(),
        );
        actix_web::rt::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                for (i, replica) in replicas.iter().enumerate() {
                    let r = fleet
                        .client
                        .get(format!("{replica}/readyz"))
                        .timeout(Duration::from_millis(500))
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE) {
                        drained.lock().expect("lock")[i] = true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let load = Arc::new(Load::default());
    let traffic = actix_web::rt::spawn(steady_load(
        fleet.clone(),
        tokens,
        stop.clone(),
        load.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    fleet.script(&["restart-rolling"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    traffic.await.expect("load");
    watch.await.expect("watch");

    let sent = load.sent.load(Ordering::SeqCst);
    let failures = load.failures.lock().expect("lock").clone();
    eprintln!(
        "rolling restart: {sent} requests sent, {} failed",
        failures.len()
    );
    assert!(
        sent > 100,
        "the load kept going through the restart ({sent} requests)"
    );
    assert!(failures.is_empty(), "no request may fail: {failures:?}");
    assert_eq!(
        *drained.lock().expect("lock"),
        vec![true; replicas.len()],
        "every replica answered /readyz 503 before it stopped"
    );
    assert!(fleet.replicas().await.iter().all(|(_, s)| s == "up"));
    assert_acknowledged_writes_are_stored(&fleet, "rolling", &load);
}

// ------------------------------------------------------------------- (c)

#[actix_web::test]
async fn a_killed_replica_fails_only_its_requests_in_flight_and_comes_back() {
    let _one = ONE_FLEET.lock().await;
    let Some(fleet) = Fleet::up().await else {
        return;
    };
    let fleet = Arc::new(fleet);
    let clients = 6;
    let tokens = users(&fleet, "killed", clients).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let traffic = actix_web::rt::spawn(steady_load(
        fleet.clone(),
        tokens,
        stop.clone(),
        load.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    let killed = fleet.script(&["kill-one"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    traffic.await.expect("load");

    let failures = load.failures.lock().expect("lock").clone();
    let sent = load.sent.load(Ordering::SeqCst);
    eprintln!(
        "kill-one {}: {sent} requests sent, {} failed",
        killed.trim(),
        failures.len()
    );
    assert!(
        failures.len() <= clients,
        "only requests in flight on the killed replica may fail (one per client at most): {failures:?}"
    );
    assert!(
        failures
            .iter()
            .all(|(at, _)| *at < killed_at + Duration::from_secs(1)),
        "traffic flows on within 1 s of the kill: {failures:?}"
    );
    let states = fleet.replicas().await;
    assert!(
        states.contains(&(killed.trim().to_owned(), "stopped".to_owned())),
        "{states:?}"
    );
    fleet.script(&["restart-rolling"]).await;
    assert!(
        fleet.replicas().await.iter().all(|(_, s)| s == "up"),
        "the replica came back"
    );
    assert_acknowledged_writes_are_stored(&fleet, "killed", &load);
}

// ------------------------------------------------------------------- (d)

#[actix_web::test]
async fn a_database_outage_answers_503_fast_keeps_cached_reads_and_recovers() {
    let _one = ONE_FLEET.lock().await;
    let Some(fleet) = Fleet::up().await else {
        return;
    };
    let admin = fleet.token("auth0|outage-admin", ADMIN);
    let reader = users(&fleet, "outage", 1).await.remove(0);
    let r = fleet
        .rename(&reader, "before the outage")
        .await
        .expect("rename");
    assert_eq!(r.status(), 200);
    // Every replica has the reader's row cached from here on.
    for (replica, _) in fleet.replicas().await {
        assert_eq!(fleet.me(&replica, &reader).await.expect("me").status(), 200);
    }

    let name = fleet.database_name();
    fleet.sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
    fleet.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ));
    let outage = Instant::now();
    let mut unavailable = Vec::new();
    let mut cached_reads = 0;
    while outage.elapsed() < Duration::from_secs(5) {
        let started = Instant::now();
        let r = fleet
            .client
            .get(format!("{}/users", fleet.url))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("the balancer answers");
        let took = started.elapsed();
        if r.status() == 503 {
            assert_eq!(r.headers()["retry-after"], "5");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let body: Value = r.json().await.expect("problem json");
            assert_eq!(body["status"], 503, "{body}");
            unavailable.push(took);
        } else {
            assert_eq!(
                r.status(),
                200,
                "a list needs the database: 503 or, before it is noticed, 200"
            );
        }
        if outage.elapsed() < Duration::from_secs(3)
            && fleet
                .me(&fleet.url, &reader)
                .await
                .is_ok_and(|r| r.status() == 200)
        {
            cached_reads += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    let back = Instant::now();

    unavailable.sort();
    assert!(
        unavailable.len() > 20,
        "most list requests got 503 ({})",
        unavailable.len()
    );
    let median = unavailable[unavailable.len() / 2];
    eprintln!(
        "outage: {} answers of 503, median {median:?}, max {:?}; {cached_reads} cached reads served",
        unavailable.len(),
        unavailable.last()
    );
    assert!(
        median < Duration::from_millis(100),
        "503 is answered fast once the outage is known: median {median:?}"
    );
    assert!(
        cached_reads > 0,
        "reads the user cache can serve keep working"
    );

    loop {
        let r = fleet
            .client
            .get(format!("{}/users", fleet.url))
            .bearer_auth(&admin)
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "2xx again within 2 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stored_name(&fleet, "auth0|outage-0").as_deref(),
        Some("before the outage")
    );
}

// ------------------------------------------------------------------- (e)

#[actix_web::test]
async fn a_deactivation_through_the_balancer_is_refused_by_every_replica_within_a_second() {
    let _one = ONE_FLEET.lock().await;
    let Some(fleet) = Fleet::up().await else {
        return;
    };
    let admin = fleet.token("auth0|deactivating-admin", ADMIN);
    let user = users(&fleet, "deactivated", 1).await.remove(0);
    let replicas = fleet.replicas().await;
    for (replica, _) in &replicas {
        assert_eq!(
            fleet.me(replica, &user).await.expect("me").status(),
            200,
            "cached on {replica}"
        );
    }
    let me: Value = fleet
        .me(&fleet.url, &user)
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    let r = fleet
        .client
        .patch(format!("{}/users/{}", fleet.url, me["id"]))
        .bearer_auth(&admin)
        .json(&json!({ "is_active": false }))
        .send()
        .await
        .expect("deactivate");
    assert_eq!(r.status(), 200);
    let deactivated = Instant::now();
    for (replica, _) in &replicas {
        loop {
            let status = fleet.me(replica, &user).await.expect("me").status();
            if status == 403 {
                break;
            }
            assert!(
                deactivated.elapsed() < Duration::from_secs(1),
                "{replica} still serves the deactivated user ({status})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "deactivation refused by every replica after {:?}",
        deactivated.elapsed()
    );
}
