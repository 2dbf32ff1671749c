//! The real binary as a process: configuration errors, graceful drain, and
//! logs that never hold a token.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;

use crate::support::{
    AUDIENCE,
    issuer::TestIssuer,
    keys::keys,
    process::{Running, command, free_port, run, serve_env, set_env},
};

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
    let cases: [(&str, &'static str, Option<&str>); 8] = [
        ("missing AUTH0_DOMAIN", "AUTH0_DOMAIN", None),
        ("missing AUTH0_AUDIENCE", "AUTH0_AUDIENCE", None),
        ("HS256", "AUTH0_ALGORITHMS", Some("HS256")),
        ("PORT=abc", "PORT", Some("abc")),
        ("MySQL", "DATABASE_URL", Some("mysql://x")),
        (
            "an issuer of the list without its /",
            "AUTH0_ISSUER",
            Some("https://a.example/,https://b.example"),
        ),
        ("roles", "AUTH_PERMISSIONS_FROM", Some("roles")),
        ("yes", "AUTH_REQUIRE_AT_JWT", Some("yes")),
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
    set_env(&mut env, "SHUTDOWN_DRAIN_SECS", "2");
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
    let stderr = logs_of_requests_with_tokens("text").await;
    assert!(
        stderr.contains("/users/me") && stderr.contains("DEBUG"),
        "the access log is captured at debug level:\n{stderr}"
    );
}

#[actix_web::test]
async fn log_format_json_writes_one_object_per_line_with_the_access_fields_and_no_token() {
    let stderr = logs_of_requests_with_tokens("json").await;
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    for line in &lines {
        for field in ["time", "level", "target", "message"] {
            assert!(line[field].is_string(), "{field} in {line}");
        }
        let time = line["time"].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok(),
            "RFC 3339 time: {line}"
        );
    }
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "debug lines too"
    );
    let me: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "usergate::access" && l["route"] == "/users/me")
        .collect();
    assert_eq!(me.len(), 3, "one access line per /users/me request: {me:?}");
    let valid = me
        .iter()
        .find(|l| l["status"] == 200)
        .expect("the valid request's line");
    assert_eq!(valid["method"], "GET");
    assert_eq!(valid["trace_id"], TRACE_ID, "the traceparent's trace id");
    assert!(valid["duration_ms"].is_number(), "{valid}");
    assert!(
        valid["replica"].as_str().is_some_and(|r| !r.is_empty()),
        "{valid}"
    );
    let request_id = valid["request_id"].as_str().unwrap_or_default();
    assert_eq!(request_id.len(), 36, "a request id: {valid}");
    assert!(
        me.iter()
            .all(|l| l["trace_id"].is_null() || l["status"] == 200),
        "a malformed traceparent gives no trace id: {me:?}"
    );
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Serves at debug level in `format`, sends valid, invalid and query-string
/// tokens, stops the server and returns its standard error once no part of
/// any token was found on either stream.
async fn logs_of_requests_with_tokens(format: &str) -> String {
    let issuer = TestIssuer::start(&[&keys().primary]);
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("u.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = serve_env(&issuer, &database_url, port);
    set_env(&mut env, "RUST_LOG", "debug");
    set_env(&mut env, "LOG_FORMAT", format);
    let mut server = Running::start(command(&["serve"], &env, dir.path()));
    server.wait_ready(&base).await;

    let client = reqwest::Client::new();
    let valid = issuer.token("auth0|logged", &["read:users"]);
    let invalid = keys().attacker.sign(&issuer.claims("auth0|logged", &[]));
    let in_query = issuer.token("auth0|in-query", &[]);
    let me = format!("{base}/users/me");
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let cases = [
        (
            "valid token",
            client
                .get(&me)
                .bearer_auth(&valid)
                .header("traceparent", traceparent),
            200,
        ),
        (
            "invalid token",
            client
                .get(&me)
                .bearer_auth(&invalid)
                .header("traceparent", format!("00-{TRACE_ID}-zz-01")),
            401,
        ),
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
            assert!(!stdout.contains(text), "{format}: {case} {part} on stdout");
            assert!(!stderr.contains(text), "{format}: {case} {part} on stderr");
        }
    }
    stderr
}
