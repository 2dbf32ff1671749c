//! Token verification cost: RS256 and ES256 in full, a cache hit, an unknown
//! kid; and a DPoP-verified request: its proof check alone, and the cached
//! bound token with its proof.
//!
//! `cargo bench --bench verifier`

// Setup failures should stop a benchmark loudly.
#![allow(clippy::expect_used)]

use std::{hint::black_box, time::Duration};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use usergate::{
    auth::{
        Dpop, DpopMode, Issuers, TokenCache, Verifier, dpop::ProofTarget, key_set::KeySet,
        replay::InProcessReplayStore,
    },
    config::{AuthSettings, PermissionsFrom},
    dev_issuer::{DevKey, MintRequest},
    dpop_key::DpopKey,
};

const ISSUER: &str = "https://bench.example/";
const AUDIENCE: &str = "https://api.bench.example/";

fn settings() -> AuthSettings {
    AuthSettings {
        issuers: vec![ISSUER.into()],
        jwks_url: Some(
            url::Url::parse("https://bench.example/.well-known/jwks.json").expect("url"),
        ),
        permissions_from: PermissionsFrom::Both,
        require_at_jwt: false,
        audiences: vec![AUDIENCE.into()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway_secs: 60,
        jwks_refresh: Duration::from_secs(600),
        jwks_cooldown: Duration::from_secs(30),
        jwks_timeout: Duration::from_secs(5),
    }
}

struct Fixture {
    rs256: String,
    /// RS256, bound to `dpop_key`.
    bound: String,
    dpop_key: DpopKey,
    es256: String,
    unknown_kid: String,
    keys: serde_json::Value,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let rsa = DevKey::load_or_create(&dir.path().join("key.pem")).expect("rsa key");
    let dpop_key = DpopKey::load_or_create(&dir.path().join("dpop.pem")).expect("dpop key");
    let mint = |cnf| {
        rsa.mint(&MintRequest {
            sub: "auth0|bench".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            scope: Some("read:users".into()),
            permissions: Some(vec!["read:users".into()]),
            cnf,
            ttl: Duration::from_secs(3600),
            ..MintRequest::default()
        })
        .expect("mint")
    };
    let rs256 = mint(None);
    let bound = mint(Some(dpop_key.confirmation()));

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("ec key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .expect("ec pair");
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "auth0|bench", "iat": now, "exp": now + 3600});
    let sign = |kid: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8.as_ref()))
            .expect("sign")
    };
    let mut keys = rsa.jwks();
    if let Some(list) = keys["keys"].as_array_mut() {
        list.push(
            json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "ec-1",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
        );
    }
    Fixture {
        rs256,
        bound,
        dpop_key,
        es256: sign("ec-1"),
        unknown_kid: sign("not-in-the-set"),
        keys,
    }
}

fn verifier(f: &Fixture, cache: TokenCache) -> Verifier {
    let settings = settings();
    let keys = KeySet::from_jwks_json(f.keys.to_string().as_bytes(), &settings.algorithms)
        .expect("key set");
    Verifier::new(&settings, Issuers::fixed(ISSUER, keys), cache)
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let uncached = verifier(&f, TokenCache::disabled());
    let cached = verifier(&f, TokenCache::default());
    assert!(
        block_on(uncached.verify(&f.rs256)).is_ok() && block_on(uncached.verify(&f.es256)).is_ok()
    );
    assert!(block_on(cached.verify(&f.rs256)).is_ok());

    let mut group = c.benchmark_group("verify");
    group.bench_function("rs256_uncached", |b| {
        b.iter(|| block_on(uncached.verify(black_box(&f.rs256))))
    });
    group.bench_function("es256_uncached", |b| {
        b.iter(|| block_on(uncached.verify(black_box(&f.es256))))
    });
    group.bench_function("cache_hit", |b| {
        b.iter(|| block_on(cached.verify(black_box(&f.rs256))))
    });
    // A fixed key set has no actor: this is the refusal's own cost. That an
    // unknown kid reaches the IdP at most once per cooldown is shown by the
    // integration test `jwks::a_flood_of_unknown_kids_costs_at_most_one_fetch_per_cooldown`.
    group.bench_function("unknown_kid", |b| {
        b.iter(|| block_on(uncached.verify(black_box(&f.unknown_kid))))
    });
    group.finish();
    bench_dpop(c, &f, &cached);
}

const URL: &str = "https://api.bench.example/users/me";

/// A DPoP-verified request: every iteration a fresh proof (minted in the
/// untimed setup), checked and its `jti` recorded in process.
fn bench_dpop(c: &mut Criterion, f: &Fixture, cached: &Verifier) {
    let dpop = Dpop::new(
        DpopMode::Allowed,
        Duration::from_secs(300),
        Duration::from_secs(60),
        std::sync::Arc::new(InProcessReplayStore::new()),
    );
    let url = url::Url::parse(URL).expect("url");
    let fresh_proof = || {
        f.dpop_key
            .proof("GET", &url, Some(&f.bound))
            .expect("proof")
    };
    let target = ProofTarget {
        method: "GET",
        url: URL,
        token: &f.bound,
        jkt: f.dpop_key.thumbprint(),
    };
    assert!(block_on(dpop.check(&fresh_proof(), &target)).is_ok());
    assert!(block_on(cached.verify(&f.bound)).is_ok());

    let mut group = c.benchmark_group("dpop");
    group.bench_function("proof_check", |b| {
        b.iter_batched(
            fresh_proof,
            |proof| block_on(dpop.check(black_box(&proof), &target)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("bound_token_cached_with_proof", |b| {
        b.iter_batched(
            fresh_proof,
            |proof| {
                block_on(async {
                    let principal = cached.verify(black_box(&f.bound)).await?;
                    dpop.check(black_box(&proof), &target).await?;
                    Ok::<_, usergate::auth::AuthError>(principal)
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
