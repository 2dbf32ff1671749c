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
    // RS256 signing is the cost: one share of the subjects per core, printed in order.
    let shares = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_share = count.div_ceil(shares);
    let minted: Vec<anyhow::Result<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shares)
            .map(|share| {
                let (key, prefix, issuer, audience) = (&key, prefix, issuer, audience);
                scope.spawn(move || {
                    let mut lines = String::new();
                    for i in share * per_share..((share + 1) * per_share).min(count) {
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
                        lines.push_str(&token);
                        lines.push('\n');
                    }
                    Ok(lines)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a minting thread panicked")))
            })
            .collect()
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for lines in minted {
        out.write_all(lines?.as_bytes())?;
    }
    Ok(())
}
