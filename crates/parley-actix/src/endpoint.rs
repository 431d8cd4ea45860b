//! One resource per path, with the methods it answers: any other method gets 405 and an
//! `Allow` header listing them (rather than the 404 of an unknown path), and every `GET` also
//! answers `HEAD` (uptime checks use it; actix-http sends the head without the body).

use crate::error::error_body;
use actix_web::dev::HttpServiceFactory;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, web};
use parley_domain::protocol::ErrorCode;

/// A path being given its methods; [`Endpoint::done`] makes the resource.
pub(crate) struct Endpoint {
    resource: Resource,
    allow: Vec<Method>,
}

/// Starts the resource at `path`.
pub(crate) fn endpoint(path: &str) -> Endpoint {
    Endpoint {
        resource: web::resource(path),
        allow: Vec::new(),
    }
}

impl Endpoint {
    /// Answers `method` with `handler`.
    pub(crate) fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.allow.push(method);
        self
    }

    /// Answers `GET` and `HEAD` with `handler`.
    pub(crate) fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::GET, handler.clone())
            .on(Method::HEAD, handler)
    }

    /// Answers `POST` with `handler`.
    pub(crate) fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::POST, handler)
    }

    /// Answers `PATCH` with `handler`.
    pub(crate) fn patch<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::PATCH, handler)
    }

    /// Answers `DELETE` with `handler`.
    pub(crate) fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::DELETE, handler)
    }

    /// The resource: its methods, and 405 with `Allow` for the others.
    pub(crate) fn done(self) -> impl HttpServiceFactory {
        let allow: Vec<&str> = self.allow.iter().map(Method::as_str).collect();
        let allow = allow.join(", ");
        self.resource
            .default_service(web::to(move || method_not_allowed(allow.clone())))
    }
}

async fn method_not_allowed(allow: String) -> HttpResponse {
    let code = ErrorCode::MethodNotAllowed;
    HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
        .insert_header((header::ALLOW, allow.clone()))
        .json(error_body(
            code,
            &format!("{}: this path answers {allow}", code.default_message()),
        ))
}
