//! What a hostile client, a careless operator and a rotating identity
//! provider can try: bounded metrics, replaced keys, forged hosts, trailing
//! bodies, dev mode by accident, tightened claims and keys, configuration
//! bounds, names that lie, security headers, and property tests.

mod answers;
mod metrics;
mod processes;
mod properties;
mod tokens;
mod urls;
