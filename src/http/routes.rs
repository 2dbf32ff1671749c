//! Method routing every resource shares (`HEAD` wherever `GET`), and the
//! bounded labels of a request that logs and metrics use.

use actix_web::{
    FromRequest, Handler, HttpRequest, Resource, Responder, Route, guard, http::Method, web,
};

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

/// A method as logged and counted: a standard one, or `OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// The route pattern that answered, or `unmatched`: never the path itself.
pub fn route_label(request: &HttpRequest) -> String {
    request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_are_logged_as_other() {
        let made_up = Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_label(&made_up), "OTHER");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
