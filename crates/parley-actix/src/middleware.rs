//! Request ids and the access log.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The request id header, read from the request when a proxy set one and echoed back.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Milliseconds since `started`, to two decimals (`ms=0.6`, not `ms=0.5983769999999999`).
pub(crate) fn elapsed_ms(started: std::time::Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0
}

/// An incoming id is kept only if it is short and plain (it ends up in logs).
pub(crate) fn usable(id: &HeaderValue) -> Option<String> {
    let s = id.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
    .then(|| s.to_owned())
}

/// Gives every request an id (`x-request-id`, kept from the request when valid), runs it in
/// a tracing span carrying that id and the client address ([`crate::AppState::client_ip`]),
/// and logs one line per request. Once the engine is shutting
/// down, every answer closes its connection. The log has the path but
/// never the query string: WebSocket clients may put their access token there.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(usable)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let state = req.app_data::<actix_web::web::Data<crate::AppState>>();
    // The client address: the TCP peer, or what a trusted proxy forwarded (routes mounted
    // without an `AppState` have no proxies to trust).
    let client = match state {
        Some(state) => state.client_ip(req.head()),
        None => req.peer_addr().map(|a| a.ip()),
    };
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
        client = %client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
    );
    let started = std::time::Instant::now();
    let stopping = state.map(|state| state.engine.clone());
    let result = next.call(req).instrument(span.clone()).await;
    let _entered = span.enter();
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let ms = elapsed_ms(started);
            if status >= 500 {
                tracing::error!(status, ms, "request failed");
            } else {
                tracing::info!(status, ms, "request");
            }
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            // Shutting down: the answer closes its connection, so a keep-alive client moves
            // to another server now rather than at the end of the graceful stop.
            if stopping.is_some_and(|engine| engine.is_shutting_down()) {
                response
                    .response_mut()
                    .head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
            }
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(error = %e, "request error");
            Err(e)
        }
    }
}
