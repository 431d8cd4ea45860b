//! The route table: every route is mounted by [`Routes`], one resource per path, and only with
//! the description of each of its methods ([`Doc`]), which goes into the OpenAPI document
//! ([`crate::openapi()`]). Run on an actix `ServiceConfig` ([`Routes::mount`]) the table mounts
//! and describes; run without one ([`Routes::describe`]) it only describes — the same calls
//! either way, so the document and the router cannot disagree.
//!
//! A resource answers the methods it was given; any other method gets 405 and an `Allow`
//! header listing them (rather than the 404 of an unknown path), and every `GET` also answers
//! `HEAD` (uptime checks use it; actix-http sends the head without the body).

use crate::error::error_body;
use crate::openapi::{Doc, Table};
use actix_cors::Cors;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, web};
use parley_domain::protocol::ErrorCode;
use utoipa::openapi::path::HttpMethod;

/// Where routes go: an actix `ServiceConfig` (and the description), or the description only.
pub(crate) struct Routes<'a> {
    /// Where the resources are mounted; `None` when only the document is wanted.
    cfg: Option<&'a mut web::ServiceConfig>,
    /// The scopes the routes sit under (`/api`): part of every described path.
    prefix: String,
    /// The description, and what was mounted.
    table: &'a mut Table,
}

impl<'a> Routes<'a> {
    /// Mounts on `cfg` and describes in `table`.
    pub(crate) fn mount(cfg: &'a mut web::ServiceConfig, table: &'a mut Table) -> Self {
        Self {
            cfg: Some(cfg),
            prefix: String::new(),
            table,
        }
    }

    /// Describes in `table` only.
    pub(crate) fn describe(table: &'a mut Table) -> Self {
        Self {
            cfg: None,
            prefix: String::new(),
            table,
        }
    }

    /// Starts the resource at `path` (relative to the enclosing scope).
    pub(crate) fn at<'r>(&'r mut self, path: &str) -> Endpoint<'r, 'a> {
        Endpoint {
            routes: self,
            path: path.to_owned(),
            resource: web::resource(path),
            allow: Vec::new(),
            docs: Vec::new(),
        }
    }

    /// The routes `add` adds, under the scope `prefix` (wrapped in `cors` when given).
    pub(crate) fn scope(
        &mut self,
        prefix: &str,
        cors: Option<Cors>,
        add: impl FnOnce(&mut Routes<'_>),
    ) {
        let full = format!("{}{prefix}", self.prefix);
        let table = &mut *self.table;
        let inner = |cfg: Option<&mut web::ServiceConfig>| {
            add(&mut Routes {
                cfg,
                prefix: full.clone(),
                table,
            })
        };
        match (self.cfg.as_deref_mut(), cors) {
            (Some(cfg), Some(cors)) => {
                cfg.service(
                    web::scope(prefix)
                        .wrap(cors)
                        .configure(|cfg| inner(Some(cfg))),
                );
            }
            (Some(cfg), None) => {
                cfg.service(web::scope(prefix).configure(|cfg| inner(Some(cfg))));
            }
            (None, _) => inner(None),
        }
    }
}

/// A path being given its methods; [`Endpoint::done`] mounts and describes the resource.
#[must_use = "a resource is mounted and described by `done`"]
pub(crate) struct Endpoint<'r, 'a> {
    /// The table it goes to.
    routes: &'r mut Routes<'a>,
    /// Relative to the scope.
    path: String,
    /// The actix resource being built.
    resource: Resource,
    /// The methods it answers so far.
    allow: Vec<Method>,
    /// The description of each described method.
    docs: Vec<(HttpMethod, Doc)>,
}

impl Endpoint<'_, '_> {
    /// Answers `method` with `handler` (undescribed: only through the methods below).
    fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.allow.push(method);
        self
    }

    /// Answers `GET` and `HEAD` with `handler`, described by `doc`.
    pub(crate) fn get<F, Args>(mut self, handler: F, doc: Doc) -> Self
    where
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.docs.push((HttpMethod::Get, doc));
        self.on(Method::GET, handler.clone())
            .on(Method::HEAD, handler)
    }

    /// Answers `GET` only (a WebSocket handshake: `HEAD` cannot upgrade), described by `doc`.
    pub(crate) fn upgrade<F, Args>(mut self, handler: F, doc: Doc) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.docs.push((HttpMethod::Get, doc));
        self.on(Method::GET, handler)
    }

    /// Answers `POST` with `handler`, described by `doc`.
    pub(crate) fn post<F, Args>(mut self, handler: F, doc: Doc) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.docs.push((HttpMethod::Post, doc));
        self.on(Method::POST, handler)
    }

    /// Answers `PATCH` with `handler`, described by `doc`.
    pub(crate) fn patch<F, Args>(mut self, handler: F, doc: Doc) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.docs.push((HttpMethod::Patch, doc));
        self.on(Method::PATCH, handler)
    }

    /// Answers `PUT` with `handler`, described by `doc`.
    pub(crate) fn put<F, Args>(mut self, handler: F, doc: Doc) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.docs.push((HttpMethod::Put, doc));
        self.on(Method::PUT, handler)
    }

    /// Answers `DELETE` with `handler`, described by `doc`.
    pub(crate) fn delete<F, Args>(mut self, handler: F, doc: Doc) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.docs.push((HttpMethod::Delete, doc));
        self.on(Method::DELETE, handler)
    }

    /// Describes the resource and, on a `ServiceConfig`, mounts it with 405 and `Allow` for
    /// the methods it does not answer.
    pub(crate) fn done(self) {
        let Self {
            routes,
            path,
            resource,
            allow,
            docs,
        } = self;
        let full = format!("{}{path}", routes.prefix);
        for (method, doc) in docs {
            routes.table.describe(&full, method, doc);
        }
        let Some(cfg) = routes.cfg.as_deref_mut() else {
            return;
        };
        let listed: Vec<&str> = allow.iter().map(Method::as_str).collect();
        let listed = listed.join(", ");
        cfg.service(resource.default_service(web::to(move || method_not_allowed(listed.clone()))));
        routes.table.mounted.push((full, allow));
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

#[cfg(test)]
mod tests {
    /// What makes the OpenAPI tests complete: nothing but this file hands actix a route, so
    /// everything mounted went through [`super::Routes`] and has a description. (actix-web
    /// lists its routes only behind its `experimental-introspection` feature.)
    #[test]
    fn routes_are_mounted_only_by_the_route_table() {
        fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                match path.is_dir() {
                    true => sources(&path, out),
                    false if path.extension().is_some_and(|e| e == "rs") => out.push(path),
                    false => {}
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        assert!(
            files.len() > 10,
            "sources not found under {}",
            src.display()
        );
        let mounting = [
            "web::resource(",
            "web::scope(",
            ".service(",
            ".route(",
            "web::method(",
            "web::get()",
            "web::post()",
            "web::patch()",
            "web::delete()",
            "web::redirect(",
            ".external_resource(",
            "#[get(",
            "#[post(",
            "#[route(",
        ];
        for file in files.iter().filter(|f| !f.ends_with("endpoint.rs")) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for needle in mounting {
                assert!(
                    !text.contains(needle),
                    "{}: `{needle}` mounts a route outside the route table: use `Routes::at` \
                     (endpoint.rs), which describes it in the OpenAPI document",
                    file.display()
                );
            }
        }
    }
}
