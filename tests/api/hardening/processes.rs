//! The real binary: dev mode never by accident, bounded configuration, and
//! an access log that never writes a made-up method.

use std::time::Duration;

use reqwest::Method;

use crate::support::{
    issuer::TestIssuer,
    keys::keys,
    process::{Running, command, free_port, run, serve_env},
};

/// Asserts a start-up refused with one line on stderr naming `var`.
fn assert_one_line_naming(case: &str, stdout: &str, stderr: &str, var: &str) -> String {
    assert_eq!(stdout, "", "{case}: nothing on stdout (no token printed)");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{case}: one line, got {stderr:?}");
    assert!(
        lines[0].starts_with(&format!("error: {var}: ")),
        "{case}: {stderr}"
    );
    lines[0].to_owned()
}

#[actix_web::test]
async fn serve_dev_refuses_a_host_other_machines_reach_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_path = dir.path().join("dev-key.pem");
    for host in ["0.0.0.0", "::", "192.0.2.10"] {
        let env = [
            ("HOST", host.to_owned()),
            ("PORT", free_port().to_string()),
            ("DEV_KEY_PATH", key_path.display().to_string()),
        ];
        let (status, stdout, stderr) = run(command(&["serve", "--dev"], &env, dir.path())).await;
        assert!(!status.success(), "HOST={host}: must refuse, got {status}");
        let line = assert_one_line_naming(&format!("HOST={host}"), &stdout, &stderr, "HOST");
        assert!(line.contains("loopback") && line.contains(host), "{line}");
        assert!(!key_path.exists(), "HOST={host}: no dev key was created");
    }
}

#[actix_web::test]
async fn serve_dev_says_which_auth0_settings_it_ignores() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let env = [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        (
            "DEV_KEY_PATH",
            dir.path().join("dev-key.pem").display().to_string(),
        ),
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("dev.db").display()),
        ),
        ("AUTH0_DOMAIN", "example.eu.auth0.com".to_owned()),
        ("AUTH0_ISSUER", "https://login.example.com/".to_owned()),
        ("SHUTDOWN_DRAIN_SECS", "0".to_owned()),
    ];
    let mut server = Running::start(command(&["serve", "--dev"], &env, dir.path()));
    server.wait_ready(&format!("http://127.0.0.1:{port}")).await;
    server.terminate();
    server.exit(Duration::from_secs(10)).await;
    let stderr = server.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("dev mode ignores"))
        .unwrap_or_else(|| panic!("no line names the ignored settings: {stderr}"));
    assert!(
        line.contains("AUTH0_DOMAIN, AUTH0_ISSUER:")
            && line.contains(&format!("http://localhost:{port}/")),
        "{line}"
    );
    assert!(
        !stderr.contains("PUBLIC_URL is not set"),
        "no such warning in dev mode: {stderr}"
    );
}

#[actix_web::test]
async fn durations_out_of_range_stop_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = TestIssuer::start(&[&keys().primary]);
    let database_url = format!("sqlite://{}", dir.path().join("u.db").display());
    for (var, value, says) in [
        (
            "JWKS_COOLDOWN_SECS",
            "0",
            "must be between 1 and 3600 seconds (got 0)",
        ),
        (
            "AUTH_LEEWAY_SECS",
            "18446744073709551615",
            "must be between 0 and 300 seconds",
        ),
        (
            "JWKS_REFRESH_SECS",
            "0",
            "must be between 1 and 86400 seconds (got 0)",
        ),
        (
            "JWKS_TIMEOUT_SECS",
            "3600",
            "must be between 1 and 60 seconds (got 3600)",
        ),
        (
            "SHUTDOWN_DRAIN_SECS",
            "86400",
            "must be between 0 and 300 seconds (got 86400)",
        ),
        (
            "PUBLIC_URL",
            "https://api.example.com/v1",
            "must be a base URL like https://api.example.com",
        ),
        (
            "METRICS_ADDR",
            "everywhere",
            "is not an IP address and port like 0.0.0.0:9000",
        ),
    ] {
        let mut env = serve_env(&issuer, &database_url, free_port());
        env.push((var, value.to_owned()));
        let (status, stdout, stderr) = run(command(&["serve"], &env, dir.path())).await;
        assert!(!status.success(), "{var}={value}: must fail");
        let line = assert_one_line_naming(&format!("{var}={value}"), &stdout, &stderr, var);
        assert!(line.contains(says), "{var}={value}: {line}");
    }
}

#[actix_web::test]
async fn the_access_log_writes_a_made_up_method_as_other_and_start_up_warns_without_public_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = TestIssuer::start(&[&keys().primary]);
    let database_url = format!("sqlite://{}", dir.path().join("u.db").display());
    let port = free_port();
    let mut env = serve_env(&issuer, &database_url, port);
    env.push(("RUST_LOG", "info".to_owned()));
    let mut server = Running::start(command(&["serve"], &env, dir.path()));
    let base = format!("http://127.0.0.1:{port}");
    server.wait_ready(&base).await;
    let made_up = format!("EXFIL{}", "Z".repeat(1024));
    let response = reqwest::Client::new()
        .request(
            Method::from_bytes(made_up.as_bytes()).expect("method"),
            format!("{base}/healthz"),
        )
        .send()
        .await
        .expect("made-up method");
    assert!(response.status().is_client_error());
    server.terminate();
    server.exit(Duration::from_secs(10)).await;
    let stderr = server.stderr();
    assert!(
        !stderr.contains("EXFIL"),
        "the made-up method is never logged: {stderr}"
    );
    assert!(
        stderr.contains(r#""OTHER /healthz""#),
        "logged as OTHER: {stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("PUBLIC_URL is not set")),
        "warns without PUBLIC_URL: {stderr}"
    );
}
