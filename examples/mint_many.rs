//! Mints many dev tokens at once for the load benchmark (`bench/run.sh`).
//!
//! `cargo run --release --example mint_many -- KEY_PATH ISSUER AUDIENCE PREFIX COUNT [TTL]`
//! prints COUNT tokens, one per line, for subjects PREFIX0..PREFIX{COUNT-1}
//! (a different TTL gives different tokens for the same subjects).

use std::{io::Write, path::Path, time::Duration};

use usergate::dev_issuer::{DevKey, MintRequest, all_permissions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (key, issuer, audience, prefix, count, ttl) = match args.as_slice() {
        [k, i, a, p, c] => (k, i, a, p, c, 3600),
        [k, i, a, p, c, t] => (k, i, a, p, c, t.parse()?),
        _ => anyhow::bail!("usage: mint_many KEY_PATH ISSUER AUDIENCE PREFIX COUNT [TTL]"),
    };
    let key = DevKey::load_or_create(Path::new(key))?;
    let count: usize = count.parse()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..count {
        let token = key.mint(&MintRequest {
            sub: format!("{prefix}{i}"),
            iss: issuer.clone(),
            aud: audience.clone(),
            scope: None,
            permissions: Some(all_permissions()),
            cnf: None,
            ttl: Duration::from_secs(ttl),
            ..MintRequest::default()
        })?;
        writeln!(out, "{token}")?;
    }
    Ok(())
}
