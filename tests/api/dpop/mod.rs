//! DPoP sender-constrained tokens (RFC 9449): proofs, replay across
//! replicas, bound tokens and `DPOP_MODE`.

mod modes;
mod proofs;
mod replay;

use reqwest::Response;

use crate::support::{
    app::TestApp,
    assert::{assert_problem, dpop_challenge, header, metrics_text, series_value},
    dpop::{ALGS, DpopKey},
};

/// A token for `sub` with `permissions`, bound to `key` (`cnf.jkt`).
pub fn bound_token(app: &TestApp, sub: &str, permissions: &[&str], key: &DpopKey) -> String {
    app.token_with(sub, permissions, &serde_json::json!({ "cnf": key.cnf() }))
}

/// Asserts the whole answer to a refused proof: 401, the DPoP challenge
/// (of the app whose clients use `base`) saying why, and problem+json.
pub async fn assert_proof_refused(base: &str, r: Response, description: &str, case: &str) {
    let www = header(&r, "www-authenticate");
    let body = assert_problem(r, 401, case).await;
    let params =
        format!(r#"error="invalid_dpop_proof", algs="{ALGS}", error_description="{description}""#);
    assert_eq!(www, Some(dpop_challenge(base, &params)), "{case}");
    assert_eq!(
        body["type"], "urn:usergate:problem:invalid-dpop-proof",
        "{case}: {body}"
    );
    assert_eq!(
        body["detail"],
        format!("invalid DPoP proof: {description}"),
        "{case}"
    );
}

/// `usergate_auth_failures_total` for `reason`, `None` when never counted.
/// The recorder is the test process's: other tests may count too.
pub async fn failures(app: &TestApp, reason: &str) -> Option<u64> {
    let series = format!("usergate_auth_failures_total{{reason=\"{reason}\"}}");
    series_value(&metrics_text(app).await, &series)
}
