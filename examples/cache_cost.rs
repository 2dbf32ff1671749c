//! What the server's caches cost per entry, measured as the resident memory
//! they add when filled with entries shaped like a real tenant's:
//!
//! `cargo run --release --example cache_cost [USERS] [TOKENS]`

use std::{sync::Arc, time::Duration};

use usergate::{
    auth::{Principal, TokenCache, claims::AccessClaims},
    config::PermissionsFrom,
    users::{
        UserCache,
        cache::Cached,
        model::{User, now},
    },
};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn user(i: usize) -> Cached {
    let at = now();
    Cached::User(Arc::new(User {
        id: i as i64,
        sub: format!("auth0|{i:024x}"),
        email: Some(format!("user{i:08}@example.com")),
        name: Some(format!("User {i:08}")),
        is_active: true,
        created_at: at,
        updated_at: at,
        last_seen_at: Some(at),
    }))
}

fn principal(i: usize) -> anyhow::Result<Arc<Principal>> {
    let claims: AccessClaims = serde_json::from_value(serde_json::json!({
        "iss": "https://tenant.example.com/",
        "sub": format!("auth0|{i:024x}"),
        "aud": ["https://api.example.com/users", "https://tenant.example.com/userinfo"],
        "azp": "hX3pBq8uW2mYzR5tN9cLkV7aJdE4fGs1",
        "exp": 4_000_000_000_i64,
        "scope": "openid profile email",
        "permissions": ["read:users", "create:users", "update:users", "delete:users"],
        "email": format!("user{i:08}@example.com"),
        "name": format!("User {i:08}"),
    }))?;
    Ok(Arc::new(Principal::from_claims(
        claims,
        PermissionsFrom::Both,
    )?))
}

/// Resident bytes per entry that `fill` adds, after the cache settles.
fn per_entry(count: usize, fill: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let before = rss_kib();
    fill()?;
    // Let any deferred housekeeping of the cache run first.
    std::thread::sleep(Duration::from_millis(200));
    Ok((rss_kib().saturating_sub(before) * 1024) as f64 / count as f64)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (users, tokens) = (
        args.first().copied().unwrap_or(50_000),
        args.get(1).copied().unwrap_or(10_000),
    );
    let cache = UserCache::default();
    let user_cost = per_entry(users, || {
        for i in 0..users {
            let sub = format!("auth0|{i:024x}");
            cache.put(cache.ticket(&sub), user(i));
        }
        Ok(())
    })?;
    let tokens_cache = TokenCache::default();
    let token_cost = per_entry(tokens, || {
        for i in 0..tokens {
            tokens_cache.insert(TokenCache::key(&format!("token-{i}")), principal(i)?);
        }
        Ok(())
    })?;
    println!("user cache: {users} users, {user_cost:.0} bytes each");
    println!(
        "verified-token cache: {tokens} tokens, {token_cost:.0} bytes each (principal included)"
    );
    Ok(())
}
