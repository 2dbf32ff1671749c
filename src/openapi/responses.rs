//! The error answers operations share, written once: each is a component of
//! the document (`#/components/responses/…`), and the groups below are what an
//! operation lists in its `responses(…)`.

use std::collections::BTreeMap;

use utoipa::{
    IntoResponses, Modify,
    openapi::{
        Ref, RefOr, Type,
        content::Content,
        header::HeaderBuilder,
        response::{Response, ResponseBuilder},
        schema::ObjectBuilder,
    },
};

use crate::http::problem::PROBLEM_JSON;

/// One shared error answer: a problem+json body and the headers it may carry.
struct ErrorAnswer {
    status: u16,
    name: &'static str,
    description: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

const CHALLENGE: &str = "The RFC 6750 challenge: `Bearer realm=\"usergate\"` alone when no \
token was sent, else with `error` (`invalid_request`, `invalid_token`, `insufficient_scope`), \
`error_description`, `scope` and `resource_metadata` (RFC 9728); then the RFC 9449 `DPoP` \
challenge (`algs`) beside it, unless `DPOP_MODE=disabled`. A refused DPoP proof is answered \
`DPoP error=\"invalid_dpop_proof\", algs=\"…\"` first; with `DPOP_MODE=required` only the \
`DPoP` challenge is sent.";

const BAD_REQUEST: ErrorAnswer = ErrorAnswer {
    status: 400,
    name: "BadRequest",
    description: "A path, query or body value the server refuses (the problem's `field` \
        names it), a body that is not one JSON object sent as `application/json`, or a \
        malformed `Authorization` header (then with a challenge, `error=\"invalid_request\"`).",
    headers: &[("WWW-Authenticate", CHALLENGE)],
};

const UNAUTHORIZED: ErrorAnswer = ErrorAnswer {
    status: 401,
    name: "Unauthorized",
    description: "No bearer token, or a token that is refused (bad signature, expired, \
        wrong issuer or audience, unknown key…, a DPoP-bound token sent as Bearer), or a \
        DPoP proof that is missing, invalid, replayed or for another request.",
    headers: &[("WWW-Authenticate", CHALLENGE)],
};

const FORBIDDEN: ErrorAnswer = ErrorAnswer {
    status: 403,
    name: "Forbidden",
    description: "The token lacks the operation's permission (a challenge with \
        `error=\"insufficient_scope\"` names it), or the caller's user is deactivated or \
        deleted (no challenge).",
    headers: &[("WWW-Authenticate", CHALLENGE)],
};

const NOT_FOUND: ErrorAnswer = ErrorAnswer {
    status: 404,
    name: "NotFound",
    description: "No user with this id.",
    headers: &[],
};

const CONFLICT: ErrorAnswer = ErrorAnswer {
    status: 409,
    name: "Conflict",
    description: "A user with this `sub` already exists.",
    headers: &[],
};

const TOO_LARGE: ErrorAnswer = ErrorAnswer {
    status: 413,
    name: "PayloadTooLarge",
    description: "The body is larger than 64 KiB.",
    headers: &[],
};

const UNAVAILABLE: ErrorAnswer = ErrorAnswer {
    status: 503,
    name: "Unavailable",
    description: "The database does not answer, the identity provider's signing keys \
        are not loaded yet, or (for a DPoP request) the store of used proofs cannot be \
        reached; try again after `Retry-After`.",
    headers: &[("Retry-After", "Seconds to wait before trying again.")],
};

const ALL: [&ErrorAnswer; 7] = [
    &BAD_REQUEST,
    &UNAUTHORIZED,
    &FORBIDDEN,
    &NOT_FOUND,
    &CONFLICT,
    &TOO_LARGE,
    &UNAVAILABLE,
];

impl ErrorAnswer {
    fn response(&self) -> Response {
        let body = Content::new(Some(Ref::from_schema_name("Problem")));
        self.headers
            .iter()
            .fold(
                ResponseBuilder::new()
                    .description(self.description)
                    .content(PROBLEM_JSON, body),
                |response, (name, description)| {
                    let header = HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .description(Some(*description));
                    response.header(*name, header.build())
                },
            )
            .build()
    }
}

fn references(answers: &[&ErrorAnswer]) -> BTreeMap<String, RefOr<Response>> {
    answers
        .iter()
        .map(|a| {
            let reference = Ref::new(format!("#/components/responses/{}", a.name));
            (a.status.to_string(), RefOr::Ref(reference))
        })
        .collect()
}

/// A marker type for `responses(…)` that refers to shared answers.
macro_rules! answers {
    ($(#[$doc:meta])* $name:ident => [$($answer:ident),+]) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                references(&[$(&$answer),+])
            }
        }
    };
}

answers!(
    /// 400, 401, 403 and 503: what every operation behind the bearer middleware can answer.
    Protected => [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, UNAVAILABLE]
);
answers!(
    /// 404: the id names no user.
    NotFound => [NOT_FOUND]
);
answers!(
    /// 409: the user exists.
    Conflict => [CONFLICT]
);
answers!(
    /// 413: what an operation with a JSON body adds.
    WithBody => [TOO_LARGE]
);

/// Puts every shared answer in `components.responses`.
pub struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for answer in ALL {
            components
                .responses
                .insert(answer.name.into(), RefOr::T(answer.response()));
        }
    }
}
