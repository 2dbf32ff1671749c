//! Method routing every resource shares: `HEAD` wherever `GET`.

use actix_web::{FromRequest, Handler, Resource, Responder, Route, guard, web};

/// A route for `GET` that answers `HEAD` the same way: same status and
/// headers, and actix-http sends no body for a `HEAD` request. A resource
/// built from such routes answers any other method 405 with `Allow`
/// (problem+json by [`super::problem::problem_fallback`]).
pub fn get_or_head() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// A resource at `path` that `handler` answers on `GET` and `HEAD`.
pub fn get_resource<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path).route(get_or_head().to(handler))
}
