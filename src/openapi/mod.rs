//! The OpenAPI document, generated from the handlers' annotations and the
//! types that parse each request, and the pages that serve it.

pub mod pages;
pub mod responses;

use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use self::responses::SharedResponses;
use crate::{discovery, health, http::Problem, metrics, users};

/// The API of usergate.
#[derive(OpenApi)]
#[openapi(
    info(title = "usergate", description = "Auth0-protected users API. Each operation's security lists the permission it needs (from the token's `scope` or `permissions`). Every error is `application/problem+json`; a method a path does not have is 405 with `Allow`, and `HEAD` answers wherever `GET` does."),
    paths(
        health::healthz,
        health::readyz,
        metrics::render,
        discovery::protected_resource,
        users::handlers::get_me,
        users::handlers::patch_me,
        users::handlers::list,
        users::handlers::create,
        users::handlers::retrieve,
        users::handlers::change_docs::replace,
        users::handlers::change_docs::update,
        users::handlers::destroy,
    ),
    components(schemas(Problem, users::User)),
    modifiers(&BearerScheme, &SharedResponses),
    tags((name = "users", description = "The local users table"), (name = "health", description = "Probes"))
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some(
            "An Auth0 access token for this API's audience; a DPoP-bound one (RFC 9449) is \
             sent as `Authorization: DPoP <token>` with a `DPoP` proof header instead."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}
