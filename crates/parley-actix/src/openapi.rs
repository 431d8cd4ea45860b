//! The OpenAPI 3.1 document of every route the server mounts, served at
//! `GET /api/openapi.json` ([`serve_document`]).
//!
//! One definition: a route is mounted only through [`crate::endpoint::Routes`], and only with
//! the [`Doc`] of each of its methods; the document ([`crate::openapi()`]) is what the same
//! route table describes when it is run without an actix `ServiceConfig`. A route therefore
//! cannot be mounted undescribed nor described unmounted, and the tests below hold the two
//! runs against each other and against actix's router.
//!
//! What is derived rather than written:
//! - the schemas, from the types (`utoipa::ToSchema`: the records in parley-domain, -core and
//!   -auth behind their `openapi` feature, the request bodies in [`crate::rest`]);
//! - the path parameters, from the path template (`{room}`, `{user}`, `{username}`);
//! - the refusals: an operation names the [`ErrorCode`]s it can answer, and each is listed
//!   under its status by [`status_of`] with the one `Error` schema ([`ErrorBody`]); a JSON body,
//!   a query string, a path parameter and authentication add the codes their parsing answers.

use crate::error::{ApiError, ErrorBody, Result, status_of};
use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use parley_domain::protocol::ErrorCode;
use parley_domain::{RoomName, UserName};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, Paths,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, Content, HeaderBuilder, InfoBuilder, LicenseBuilder, ObjectBuilder, OpenApi,
    OpenApiBuilder, Ref, RefOr, Required, Response, ResponseBuilder,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// The groups operations are listed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// Register, log in, tokens.
    Accounts,
    /// Rooms, members, history, presence, direct rooms.
    Rooms,
    /// The WebSocket handshakes.
    Socket,
    /// Health checks and this document.
    Service,
    /// The embedded web client's files.
    WebClient,
    /// Staff administration.
    Admin,
}

impl Tag {
    /// Every tag, in the order the document lists them.
    const ALL: [Self; 6] = [
        Self::Accounts,
        Self::Rooms,
        Self::Socket,
        Self::Service,
        Self::WebClient,
        Self::Admin,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Rooms => "rooms",
            Self::Socket => "socket",
            Self::Service => "service",
            Self::WebClient => "web client",
            Self::Admin => "admin",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Accounts => "Accounts and tokens: register, log in, refresh, log out, whoami.",
            Self::Rooms => {
                "Rooms, their members, history and presence, and direct (1:1) rooms. Who may do \
                 what is the engine's rule, the same over REST and the socket."
            }
            Self::Socket => {
                "The chat WebSocket's handshakes. What is said after the upgrade (frames, close \
                 codes) is in docs/protocol.md, not here."
            }
            Self::Service => "Health checks and this document.",
            Self::WebClient => "The browser client, compiled into the server (no CDN).",
            Self::Admin => {
                "Staff only (403 `forbidden` for others): accounts (list, show, promote, demote, \
                 deactivate, reactivate, reset a password, delete), the audit log and the \
                 run-time guest switch. Every change is recorded in the audit log."
            }
        }
    }
}

/// The security scheme of `Authorization: Bearer <access token>`.
const BEARER: &str = "bearer";
/// The security scheme of `?token=<access token>` (the WebSocket handshakes only).
const TOKEN_QUERY: &str = "token";

/// The codes a request with a bad or missing access token is refused with (all 401).
const TOKEN_REFUSALS: [ErrorCode; 5] = [
    ErrorCode::Unauthorized,
    ErrorCode::TokenInvalid,
    ErrorCode::TokenExpired,
    ErrorCode::TokenRevoked,
    ErrorCode::WrongTokenType,
];

/// How one operation (a path and a method) is described: what it does, what it takes, what
/// it answers. Built next to the route it describes ([`crate::endpoint::Endpoint`]).
#[must_use]
pub(crate) struct Doc {
    /// Group, summary, description, parameters, body, security.
    operation: OperationBuilder,
    /// Successful answers, by status.
    replies: Vec<(StatusCode, Response)>,
    /// The codes it can be refused with.
    refusals: Vec<ErrorCode>,
    /// The schemas its body and answers refer to, nested ones included.
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl Doc {
    /// An operation named `id` (unique in the document: client generators make it a
    /// function name) in the group `tag`, summed up in one line.
    pub(crate) fn new(tag: Tag, id: &str, summary: &str) -> Self {
        Self {
            operation: OperationBuilder::new()
                .tag(tag.name())
                .operation_id(Some(id))
                .summary(Some(summary)),
            replies: Vec::new(),
            refusals: Vec::new(),
            schemas: Vec::new(),
        }
    }

    /// What a client needs to know beyond the summary (CommonMark).
    pub(crate) fn describe(mut self, text: &str) -> Self {
        self.operation = self.operation.description(Some(text));
        self
    }

    /// Needs `Authorization: Bearer <access token>`.
    pub(crate) fn authenticated(mut self) -> Self {
        self.operation = self
            .operation
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
        self.refuses(&TOKEN_REFUSALS)
            .refuses(&[ErrorCode::AccountDisabled])
    }

    /// Needs the access token as `Authorization: Bearer` or `?token=` (a browser cannot set
    /// headers on a WebSocket).
    pub(crate) fn authenticated_socket(mut self) -> Self {
        self.operation = self
            .operation
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
            .security(SecurityRequirement::new(TOKEN_QUERY, Vec::<String>::new()));
        self.refuses(&TOKEN_REFUSALS)
    }

    /// Takes the query string `T` (each field a parameter).
    pub(crate) fn query<T: IntoParams>(mut self) -> Self {
        for parameter in T::into_params(|| Some(ParameterIn::Query)) {
            self.operation = self.operation.parameter(parameter);
        }
        self.refuses(&[ErrorCode::InvalidField])
    }

    /// Takes the parameter `parameter` (one the path and `query` do not describe).
    pub(crate) fn parameter(mut self, parameter: Parameter) -> Self {
        self.operation = self.operation.parameter(parameter);
        self
    }

    /// Takes a JSON body `T`; fields it does not define are refused.
    pub(crate) fn body<T: ToSchema>(mut self) -> Self {
        let schema = self.schema::<T>();
        self.operation = self.operation.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", Content::new(Some(schema)))
                .build(),
        ));
        self.refuses(&[
            ErrorCode::InvalidJson,
            ErrorCode::MissingField,
            ErrorCode::UnknownField,
            ErrorCode::InvalidField,
            ErrorCode::InvalidContentType,
            ErrorCode::TooLarge,
        ])
    }

    /// Answers `status` with a JSON `T`.
    pub(crate) fn reply<T: ToSchema>(mut self, status: StatusCode, description: &str) -> Self {
        let schema = self.schema::<T>();
        let response = ResponseBuilder::new()
            .description(description)
            .content("application/json", Content::new(Some(schema)))
            .build();
        self.replies.push((status, response));
        self
    }

    /// Answers `status` without a body.
    pub(crate) fn reply_empty(self, status: StatusCode, description: &str) -> Self {
        self.reply_with(status, Response::new(description))
    }

    /// Answers `status` with `response` (a body that is not a JSON record).
    pub(crate) fn reply_with(mut self, status: StatusCode, response: Response) -> Self {
        self.replies.push((status, response));
        self
    }

    /// Can be refused with `codes` (each under its status, with the `Error` body).
    pub(crate) fn refuses(mut self, codes: &[ErrorCode]) -> Self {
        for code in codes {
            if !self.refusals.contains(code) {
                self.refusals.push(*code);
            }
        }
        self
    }

    /// A reference to `T`'s schema, which (and whatever it refers to) the document will hold.
    fn schema<T: ToSchema>(&mut self) -> RefOr<Schema> {
        self.schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.schemas);
        RefOr::Ref(Ref::from_schema_name(T::name()))
    }
}

/// What a route table run produced: the described operations and, when it mounted them on
/// an actix `ServiceConfig`, what each path answers.
#[derive(Default)]
pub(crate) struct Table {
    /// The described operations.
    paths: Paths,
    /// Every schema they refer to, by name.
    schemas: BTreeMap<String, RefOr<Schema>>,
    /// Schema names given to two different schemas (two types of one name): must stay empty.
    clashes: Vec<String>,
    /// Each mounted path (OpenAPI template) with the methods its resource answers, `HEAD`
    /// included; empty when nothing was mounted.
    pub(crate) mounted: Vec<(String, Vec<actix_web::http::Method>)>,
}

impl Table {
    /// Adds `doc` as the `method` operation of `path` (a full path: scopes included).
    pub(crate) fn describe(&mut self, path: &str, method: HttpMethod, doc: Doc) {
        let Doc {
            mut operation,
            replies,
            mut refusals,
            schemas,
        } = doc;
        for name in path_parameters(path) {
            let (parameter, refusal) = path_parameter(name);
            operation = operation.parameter(parameter);
            if !refusals.contains(&refusal) {
                refusals.push(refusal);
            }
        }
        for (status, response) in replies {
            operation = operation.response(status.as_str(), response);
        }
        for (status, codes) in by_status(&refusals) {
            operation = operation.response(status.as_str(), refusal_response(status, &codes));
        }
        if !refusals.is_empty() {
            let (name, schema) = (ErrorBody::name().into_owned(), ErrorBody::schema());
            let mut nested = vec![(name, schema)];
            ErrorBody::schemas(&mut nested);
            self.add_schemas(nested);
        }
        self.add_schemas(schemas);
        self.paths
            .add_path_operation(path, vec![method], operation.build());
    }

    fn add_schemas(&mut self, schemas: Vec<(String, RefOr<Schema>)>) {
        for (name, schema) in schemas {
            match self.schemas.get(&name) {
                Some(known) if *known != schema => self.clashes.push(name),
                Some(_) => {}
                None => {
                    self.schemas.insert(name, schema);
                }
            }
        }
    }

    /// The document.
    pub(crate) fn into_openapi(self) -> OpenApi {
        let mut components = ComponentsBuilder::new()
            .schemas_from_iter(self.schemas)
            .security_scheme(
                BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "An access token from `POST /api/auth/login` or \
                             `POST /api/auth/refresh`.",
                        ))
                        .build(),
                ),
            );
        let mut token = ApiKeyValue::new("token");
        token.description = Some(
            "The access token as a query parameter: the WebSocket handshakes only (a browser \
             cannot set headers on a WebSocket). Never logged."
                .to_owned(),
        );
        components =
            components.security_scheme(TOKEN_QUERY, SecurityScheme::ApiKey(ApiKey::Query(token)));
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("Parley")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(DESCRIPTION))
                    .license(Some(
                        LicenseBuilder::new()
                            .name(env!("CARGO_PKG_LICENSE"))
                            .identifier(Some(env!("CARGO_PKG_LICENSE")))
                            .build(),
                    ))
                    .build(),
            )
            .tags(Some(Tag::ALL.map(|tag| {
                TagBuilder::new()
                    .name(tag.name())
                    .description(Some(tag.description()))
                    .build()
            })))
            .paths(self.paths)
            .components(Some(components.build()))
            .build()
    }

    /// Schema names two different types claimed.
    #[cfg(test)]
    pub(crate) fn clashes(&self) -> &[String] {
        &self.clashes
    }
}

/// The document's introduction: what holds for every operation.
const DESCRIPTION: &str = "\
Parley's HTTP API: the REST API under `/api`, the chat WebSocket's handshakes, health checks \
and the embedded web client. Generated from the server's route table, so every route the \
server mounts is here and nothing else is. Prose, examples and limits: docs/api.md; the \
WebSocket's frames: docs/protocol.md.

- **Errors**: every refusal has the body `{\"error\": {\"code\", \"message\"}}` (the `Error` \
schema); a code always comes with the same status. Operations list the codes they can answer \
under their statuses; `internal` (500) and `unavailable` (503, with `Retry-After`) can answer \
any request that reaches the database.
- **Methods**: every `GET` also answers `HEAD` (the same head, no body); another method on a \
described path answers 405 `method_not_allowed` with `Allow`; an undescribed path answers 404 \
`not_found`.
- **Bodies** are JSON of at most `json_limit_bytes` (64 KiB by default); unknown fields are \
refused.
- **Records**: ids are integers; timestamps are milliseconds since the Unix epoch (UTC).
- Every response carries `x-request-id`.";

/// The `{name}`s of a path template, in order.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// The description of the path parameter `name`, and the code a malformed value answers.
/// One place for every parameter name the routes use (a test makes sure none is missing).
fn path_parameter(name: &str) -> (Parameter, ErrorCode) {
    let (schema, description, refusal): (RefOr<Schema>, &str, ErrorCode) = match name {
        "room" => (
            Ref::from_schema_name(RoomName::name()).into(),
            "The room's name (case-insensitive).",
            ErrorCode::InvalidRoomName,
        ),
        "user" | "username" => (
            Ref::from_schema_name(UserName::name()).into(),
            "A user's name (case-insensitive).",
            ErrorCode::InvalidField,
        ),
        "id" => (
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(1))
                .into(),
            "A message's id (a positive number).",
            ErrorCode::InvalidField,
        ),
        "provider" => (
            ObjectBuilder::new().schema_type(Type::String).into(),
            "An OpenID Connect sign-in provider's name (a key of `oidc_providers`, e.g. \
             `google`); 404 `not_found` when there is none.",
            ErrorCode::NotFound,
        ),
        _ => (
            ObjectBuilder::new().schema_type(Type::String).into(),
            "",
            ErrorCode::InvalidField,
        ),
    };
    let parameter = ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description).filter(|d| !d.is_empty()))
        .schema(Some(schema))
        .build();
    (parameter, refusal)
}

/// `codes` grouped by their status.
fn by_status(codes: &[ErrorCode]) -> BTreeMap<StatusCode, Vec<ErrorCode>> {
    let mut grouped: BTreeMap<StatusCode, Vec<ErrorCode>> = BTreeMap::new();
    for code in codes {
        grouped.entry(status_of(*code)).or_default().push(*code);
    }
    grouped
}

/// The response of refusals with `codes`, all of status `status`.
fn refusal_response(status: StatusCode, codes: &[ErrorCode]) -> Response {
    let listed: Vec<String> = codes.iter().map(|code| format!("`{code}`")).collect();
    let reason = status.canonical_reason().unwrap_or("Refused");
    let mut response = ResponseBuilder::new()
        .description(format!("{reason}: {}.", listed.join(", ")))
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
        );
    let header = |description: &str, schema: Type| {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(schema)))
            .description(Some(description))
            .build()
    };
    if status == StatusCode::UNAUTHORIZED {
        response = response.header(
            header::WWW_AUTHENTICATE.as_str(),
            header("`Bearer`.", Type::String),
        );
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response = response.header(
            header::RETRY_AFTER.as_str(),
            header("Seconds to wait before trying again.", Type::Integer),
        );
    }
    response.build()
}

/// The served document: its JSON and entity tag, made once per process.
struct Served {
    json: Bytes,
    etag: String,
}

fn served() -> Result<&'static Served> {
    static SERVED: OnceLock<std::result::Result<Served, String>> = OnceLock::new();
    SERVED
        .get_or_init(|| {
            let json = serde_json::to_vec(&crate::openapi()).map_err(|e| e.to_string())?;
            // The same build serves the same bytes, so the tag only has to be stable within a
            // build: std's hasher is, and nothing else is needed for it.
            let mut hasher = std::hash::DefaultHasher::new();
            json.hash(&mut hasher);
            Ok(Served {
                etag: format!("\"{:016x}\"", hasher.finish()),
                json: Bytes::from(json),
            })
        })
        .as_ref()
        .map_err(|e| ApiError::Internal(format!("OpenAPI document: {e}")))
}

/// `GET /api/openapi.json`: this document, with an entity tag (304 when the client has it).
pub(crate) async fn serve_document(req: HttpRequest) -> Result<HttpResponse> {
    let served = served()?;
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == served.etag || tag.trim() == "*");
    let mut response = match fresh {
        true => HttpResponse::NotModified(),
        false => HttpResponse::Ok(),
    };
    response
        .insert_header((header::ETAG, served.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"));
    Ok(match fresh {
        true => response.finish(),
        false => response
            .content_type("application/json")
            .body(served.json.clone()),
    })
}

/// The description of [`serve_document`].
pub(crate) fn document_doc() -> Doc {
    Doc::new(Tag::Service, "openapi", "This document")
        .describe(
            "The OpenAPI 3.1 description of every route the server mounts, generated from its \
             route table. No authentication; cacheable (`ETag`, `If-None-Match`).",
        )
        .reply_with(
            StatusCode::OK,
            ResponseBuilder::new()
                .description("The document.")
                .content(
                    "application/json",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
                )
                .build(),
        )
        .reply_empty(
            StatusCode::NOT_MODIFIED,
            "The client's copy (`If-None-Match`) is current.",
        )
        .refuses(&[ErrorCode::Internal])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Routes;
    use actix_web::http::Method;
    use actix_web::test as actix_test;
    use actix_web::{App, web};
    use serde_json::Value;
    use std::collections::{BTreeSet, HashSet};

    /// The document as JSON, as it is served.
    fn document() -> Value {
        serde_json::to_value(crate::openapi()).unwrap_or(Value::Null)
    }

    /// Every (path, method) the document describes, methods upper-case.
    fn described(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ] {
                if item.get(method).is_some() {
                    out.insert((path.clone(), method.to_ascii_uppercase()));
                }
            }
        }
        out
    }

    /// Every `$ref` in `value`, with where it sits.
    fn refs<'v>(value: &'v Value, at: String, out: &mut Vec<(String, &'v str)>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(target)) => out.push((at.clone(), target)),
                        _ => refs(v, format!("{at}/{key}"), out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    refs(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc = document();
        let version = doc["openapi"].as_str().unwrap_or("");
        assert!(version.starts_with("3.1."), "openapi: {version:?}");
        assert_eq!(doc["info"]["title"], "Parley");
        assert!(doc["info"]["version"].is_string());
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));

        let mut found = Vec::new();
        refs(&doc, String::new(), &mut found);
        assert!(found.len() > 20, "too few references: {}", found.len());
        for (at, target) in found {
            let pointer = target.strip_prefix('#');
            assert!(
                pointer.is_some_and(|p| doc.pointer(p).is_some()),
                "{at}: $ref {target} does not resolve in the document"
            );
        }
        // Nothing defined that nothing uses.
        let text = doc.to_string();
        for name in doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(n, _)| n)
        {
            assert!(
                text.contains(&format!("\"#/components/schemas/{name}\"")),
                "schema {name} is never referenced"
            );
        }
    }

    #[test]
    fn every_operation_is_complete_and_its_parameters_match_its_path() {
        let doc = document();
        let tags: HashSet<&str> = doc["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .collect();
        let schemes = doc["components"]["securitySchemes"].as_object();
        let mut ids = HashSet::new();
        for (path, method) in described(&doc) {
            let op = &doc["paths"][&path][method.to_ascii_lowercase()];
            let what = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap_or("");
            assert!(
                !id.is_empty() && ids.insert(id.to_owned()),
                "{what}: operationId {id:?}"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: summary"
            );
            let op_tags: Vec<&str> = op["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                op_tags.len() == 1 && tags.contains(op_tags[0]),
                "{what}: tags {op_tags:?}"
            );
            let responses = op["responses"].as_object();
            assert!(
                responses.is_some_and(|r| !r.is_empty()),
                "{what}: responses"
            );
            for (status, response) in responses.into_iter().flatten() {
                assert!(
                    status.len() == 3
                        && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                    "{what}: status {status}"
                );
                assert!(
                    response["description"].is_string(),
                    "{what} {status}: description"
                );
            }
            let templated: Vec<&str> = path_parameters(&path).collect();
            let in_path: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{what}: path parameter not required");
                    assert!(
                        p["description"].is_string(),
                        "{what}: {p}: add it to path_parameter"
                    );
                    p["name"].as_str().unwrap_or("")
                })
                .collect();
            assert_eq!(templated, in_path, "{what}: path parameters");
            for requirement in op["security"].as_array().into_iter().flatten() {
                for (name, _) in requirement.as_object().into_iter().flatten() {
                    assert!(
                        schemes.is_some_and(|s| s.contains_key(name)),
                        "{what}: security scheme {name} undefined"
                    );
                }
            }
        }
    }

    #[test]
    fn no_two_types_claim_one_schema_name() {
        let mut table = Table::default();
        crate::routes(&mut Routes::describe(&mut table), None);
        assert_eq!(table.clashes(), &[] as &[String]);
    }

    /// The route table run on a real actix `App` — what [`crate::configure`] mounts — without
    /// the application state (no handler here gets that far).
    #[actix_web::test]
    async fn every_mounted_route_is_described_and_every_described_route_is_routed() {
        let table = std::rc::Rc::new(std::cell::RefCell::new(None));
        let keep = table.clone();
        let app =
            actix_test::init_service(App::new().configure(move |cfg: &mut web::ServiceConfig| {
                *keep.borrow_mut() = Some(crate::mount(cfg, None));
            }))
            .await;
        let Some(table) = table.take() else {
            panic!("the route table was not mounted");
        };
        let doc = document();
        let described = described(&doc);

        // Mounted → described: each resource's methods (less the HEAD of a GET) are the
        // described operations of its path.
        let mut mounted = BTreeSet::new();
        for (path, methods) in &table.mounted {
            for method in methods {
                if *method == Method::HEAD {
                    assert!(methods.contains(&Method::GET), "HEAD without GET at {path}");
                    continue;
                }
                assert!(
                    mounted.insert((path.clone(), method.to_string())),
                    "{method} {path} mounted twice"
                );
            }
        }
        assert_eq!(
            mounted, described,
            "mounted (left) and described (right) differ"
        );

        // Described → routed, asked of actix's router: no described operation is answered by
        // the fallback (404 "no route") or with 405, and another method gets 405 naming them.
        let concrete = |path: &str| {
            path.split('/')
                .map(|s| if s.starts_with('{') { "lobby" } else { s })
                .collect::<Vec<_>>()
                .join("/")
        };
        for (path, method) in &described {
            let uri = concrete(path);
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            let req = actix_test::TestRequest::default()
                .method(method.clone())
                .uri(&uri)
                .to_request();
            let res = actix_test::call_service(&app, req).await;
            let status = res.status();
            let body = actix_test::read_body(res).await;
            let text = String::from_utf8_lossy(&body);
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && !text.contains("no route for"),
                "{method} {uri}: {status} {text}"
            );
            // A method no route answers (`PUT` is answered by `/api/admin/guests`).
            let req = actix_test::TestRequest::default()
                .method(Method::TRACE)
                .uri(&uri)
                .to_request();
            let res = actix_test::call_service(&app, req).await;
            assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "TRACE {uri}");
            let allow = res
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            for (p, m) in described.iter().filter(|(p, _)| p == path) {
                assert!(
                    allow.split(", ").any(|a| a == m),
                    "{p}: Allow {allow:?} lacks {m}"
                );
            }
        }
        // And a path that is not described is nobody's.
        let req = actix_test::TestRequest::get()
            .uri("/api/undescribed")
            .to_request();
        let res = actix_test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
