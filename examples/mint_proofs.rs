//! Mints many DPoP proofs at once for the load benchmark (`bench/run.sh`).
//!
//! `cargo run --release --example mint_proofs -- DPOP_KEY_PATH METHOD URL TOKEN COUNT`
//! prints COUNT fresh proofs (each its own `jti`), one per line, for
//! `METHOD URL` with TOKEN (bound to the key with `mint-token --dpop-key`).

use std::{io::Write, path::Path};

use usergate::dpop_key::DpopKey;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, method, url, token, count] = args.as_slice() else {
        anyhow::bail!("usage: mint_proofs DPOP_KEY_PATH METHOD URL TOKEN COUNT");
    };
    let key = DpopKey::load_or_create(Path::new(key))?;
    let url = url::Url::parse(url)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count.parse::<usize>()? {
        writeln!(out, "{}", key.proof(method, &url, Some(token))?)?;
    }
    Ok(())
}
