//! The real binary as a process: configuration errors, graceful drain, and
//! logs that never hold a token; the helpers other process tests share.

use std::{
    io::Read,
    net::TcpListener,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use futures::future::join_all;

use crate::helpers::{AUDIENCE, TestIssuer, binary, keys};

/// A port nobody listens on right now (bound, then released for the child).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports: all are held at once, so none is picked twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [TcpListener; N] =
        std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").expect("free port"));
    listeners.map(|l| l.local_addr().expect("local address").port())
}

/// The binary with `args`, a clean environment (PATH and `env` only) and a
/// working directory without any `.env`.
pub fn command(args: &[&str], env: &[(&str, String)], cwd: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A child process whose output is collected as it comes; killed on drop.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("output buffer")
                .extend_from_slice(&buf[..n]);
        }
    })
}

impl Running {
    /// Starts `command`.
    pub fn start(mut command: Command) -> Self {
        let mut child = command.spawn().expect("start the usergate binary");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), Arc::clone(&stdout)),
            collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr)),
        ];
        Self {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Standard output so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("stdout")).into_owned()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr")).into_owned()
    }

    /// Sends SIGTERM to this child (by its pid).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the exit without blocking the test's runtime (which may be
    /// serving the issuer); panics with the output after `within`.
    pub async fn exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {within:?}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `GET {base}/readyz` until 200 (at most 30 s).
    pub async fn wait_ready(&mut self, base: &str) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("exited early with {status}\nstderr:\n{}", self.stderr());
            }
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{base} did not become ready\nstderr:\n{}", self.stderr());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a short command to its end (at most 60 s): status, stdout, stderr.
pub async fn run(command: Command) -> (ExitStatus, String, String) {
    let mut running = Running::start(command);
    let status = running.exit(Duration::from_secs(60)).await;
    (status, running.stdout(), running.stderr())
}

/// The environment of `serve` against `issuer` on `port`.
pub fn serve_env(
    issuer: &TestIssuer,
    database_url: &str,
    port: u16,
) -> Vec<(&'static str, String)> {
    vec![
        ("AUTH0_ISSUER", issuer.issuer.clone()),
        ("AUTH0_AUDIENCE", AUDIENCE.into()),
        ("DATABASE_URL", database_url.into()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", port.to_string()),
        ("SHUTDOWN_DRAIN_SECS", "0".into()),
    ]
}

fn set(env: &mut Vec<(&'static str, String)>, name: &'static str, value: &str) {
    env.retain(|(n, _)| *n != name);
    env.push((name, value.into()));
}

// ------------------------------------------------------ config errors (B)

#[actix_web::test]
async fn invalid_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = vec![
        ("AUTH0_DOMAIN", "example.eu.auth0.com".to_owned()),
        ("AUTH0_AUDIENCE", AUDIENCE.to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("u.db").display()),
        ),
        // A panic would show its backtrace: there must be none.
        ("RUST_BACKTRACE", "1".to_owned()),
    ];
    let cases: [(&str, &'static str, Option<&str>); 5] = [
        ("missing AUTH0_DOMAIN", "AUTH0_DOMAIN", None),
        ("missing AUTH0_AUDIENCE", "AUTH0_AUDIENCE", None),
        ("HS256", "AUTH0_ALGORITHMS", Some("HS256")),
        ("PORT=abc", "PORT", Some("abc")),
        ("MySQL", "DATABASE_URL", Some("mysql://x")),
    ];
    for (case, var, value) in cases {
        let mut env = base.clone();
        env.retain(|(name, _)| *name != var);
        if let Some(value) = value {
            env.push((var, value.to_owned()));
        }
        // With no subcommand `serve` runs: check both spellings.
        let args: &[&str] = if case.starts_with("missing") {
            &[]
        } else {
            &["serve"]
        };
        let (status, stdout, stderr) = run(command(args, &env, dir.path())).await;
        assert!(!status.success(), "{case}: must fail, got {status}");
        assert_eq!(stdout, "", "{case}: nothing on stdout");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{case}: one line, got {stderr:?}");
        assert!(lines[0].contains(var), "{case}: must name {var}: {stderr}");
        for forbidden in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(!stderr.contains(forbidden), "{case}: {stderr}");
        }
    }
}

// ------------------------------------------------------ graceful drain (G)

/// One probe of the drain test: when it was sent, what, and its answer.
struct Probe {
    sent: Instant,
    path: &'static str,
    answer: Result<u16, String>,
}

#[actix_web::test]
async fn sigterm_turns_readyz_503_serves_through_the_drain_and_exits_0() {
    let drain = Duration::from_secs(2);
    let issuer = TestIssuer::start(&[&keys().primary]);
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("u.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = serve_env(&issuer, &database_url, port);
    set(&mut env, "SHUTDOWN_DRAIN_SECS", "2");
    let mut server = Running::start(command(&["serve"], &env, dir.path()));
    server.wait_ready(&base).await;

    let token = issuer.token("auth0|drain", &[]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, base) = (stop.clone(), base.clone());
        actix_web::rt::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut probes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let sent = Instant::now();
                let answers = join_all(["/healthz", "/users/me", "/readyz"].map(|path| {
                    let request = client.get(format!("{base}{path}")).bearer_auth(&token);
                    async move {
                        let answer = request.send().await;
                        let answer = answer.map(|r| r.status().as_u16());
                        (path, answer.map_err(|e| e.to_string()))
                    }
                }))
                .await;
                for (path, answer) in answers {
                    probes.push(Probe { sent, path, answer });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            probes
        })
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    let terminated = Instant::now();
    server.terminate();
    let status = server.exit(drain + Duration::from_secs(5)).await;
    let exited = terminated.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let probes = traffic.await.expect("traffic task");
    assert!(
        status.success(),
        "exit status {status}\n{}",
        server.stderr()
    );
    assert!(
        exited >= drain,
        "stopped before the drain ended: {exited:?}"
    );

    // The server drains for at least `drain` after the signal arrives; what
    // is sent before that (less a margin for the trip) must be served. A
    // probe's time is taken as its batch starts, so /readyz right around the
    // signal may say either: only an answer is required of it.
    let served_until = terminated + drain - Duration::from_millis(300);
    for p in probes.iter().filter(|p| p.sent < served_until) {
        let fine: &[u16] = if p.path == "/readyz" {
            &[200, 503]
        } else {
            &[200]
        };
        assert!(
            p.answer.as_ref().is_ok_and(|s| fine.contains(s)),
            "{} sent {:?} after SIGTERM failed: {:?}",
            p.path,
            p.sent.saturating_duration_since(terminated),
            p.answer
        );
    }
    let during = |path: &str, status: u16| {
        probes.iter().any(|p| {
            p.path == path
                && p.sent > terminated
                && p.sent < served_until
                && p.answer.as_ref().ok() == Some(&status)
        })
    };
    let ready_before = probes.iter().any(|p| {
        p.path == "/readyz" && p.sent < terminated && p.answer.as_ref().ok() == Some(&200)
    });
    assert!(ready_before, "/readyz answers 200 before the signal");
    assert!(
        during("/readyz", 503),
        "/readyz must turn 503 while draining"
    );
    assert!(during("/healthz", 200), "/healthz keeps answering 200");
    assert!(during("/users/me", 200), "requests are still served");
}

// --------------------------------------------------- tokens in logs (H)

#[actix_web::test]
async fn tokens_never_reach_the_logs_even_at_debug_level() {
    let issuer = TestIssuer::start(&[&keys().primary]);
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("u.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = serve_env(&issuer, &database_url, port);
    set(&mut env, "RUST_LOG", "debug");
    let mut server = Running::start(command(&["serve"], &env, dir.path()));
    server.wait_ready(&base).await;

    let client = reqwest::Client::new();
    let valid = issuer.token("auth0|logged", &["read:users"]);
    let invalid = keys().attacker.sign(&issuer.claims("auth0|logged", &[]));
    let in_query = issuer.token("auth0|in-query", &[]);
    let me = format!("{base}/users/me");
    let cases = [
        ("valid token", client.get(&me).bearer_auth(&valid), 200),
        ("invalid token", client.get(&me).bearer_auth(&invalid), 401),
        (
            "token in the query string",
            client.get(format!("{me}?access_token={in_query}")),
            401,
        ),
        (
            "token in the query string of /healthz",
            client.get(format!("{base}/healthz?access_token={in_query}")),
            200,
        ),
    ];
    for (case, request, status) in cases {
        let r = request.send().await.expect("request");
        assert_eq!(r.status(), status, "{case}");
    }

    server.terminate();
    assert!(server.exit(Duration::from_secs(10)).await.success());
    let (stdout, stderr) = (server.stdout(), server.stderr());
    assert!(
        stderr.contains("/users/me") && stderr.contains("DEBUG"),
        "the access log is captured at debug level:\n{stderr}"
    );
    for (case, token) in [
        ("valid", &valid),
        ("invalid", &invalid),
        ("query", &in_query),
    ] {
        let parts: Vec<&str> = token.split('.').collect();
        for (part, text) in [
            ("token", token.as_str()),
            ("payload", parts[1]),
            ("signature", parts[2]),
        ] {
            assert!(!stdout.contains(text), "{case} {part} on stdout");
            assert!(!stderr.contains(text), "{case} {part} on stderr");
        }
    }
}
