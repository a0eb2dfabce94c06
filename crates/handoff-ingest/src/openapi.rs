//! The OpenAPI 3.1 document of both listeners, generated from the handlers' annotations
//! and the request and response types. Served at `GET /openapi.json` on the internal
//! listener and committed as `docs/openapi.json`; a unit test fails when the two differ
//! (regenerate: `UPDATE_OPENAPI=1 cargo test -p handoff-ingest openapi`).
//!
//! Which listener serves a path is said twice: by its tag (`public`, `internal`) and by
//! the path's `servers`.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::{Server, ServerBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToResponse};

use handoff_telemetry::ReadinessReport;

use crate::error::{ErrorBody, ErrorDetail};

/// Paths served on the internal listener only.
const INTERNAL_PATHS: [&str; 3] = ["/v1/reps/{id}", "/metrics", "/openapi.json"];
/// Paths served on both listeners.
const SHARED_PATHS: [&str; 2] = ["/healthz", "/readyz"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "handoff",
        description = "Lead intake, dispositions and rep administration. Two listeners: the \
            public one (`ingest.listen`) takes leads, dispositions and signed webhooks; the \
            internal one (`admin.listen`, never exposed) serves rep administration, metrics \
            and this document. Every error answer has the body `ErrorBody`."
    ),
    paths(
        crate::leads::submit,
        crate::dispositions::submit,
        crate::lookup::lead,
        crate::lookup::queues,
        crate::lookup::queue,
        crate::scorecard::get,
        crate::intake::submit,
        crate::actions::show,
        crate::actions::record,
        crate::reps::get,
        crate::reps::put,
        healthz,
        readyz,
        metrics,
        document,
    ),
    components(
        schemas(ErrorBody, ErrorDetail),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            RequestTimeout,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            UnprocessableEntity,
            TooManyRequests,
            ServiceUnavailable
        )
    ),
    tags(
        (name = "public", description = "On the public listener (`ingest.listen`)."),
        (name = "internal", description = "On the internal listener (`admin.listen`): no \
            exposure outside the cluster; rep administration still needs a key."),
    ),
    modifiers(&Listeners, &SecuritySchemes)
)]
struct ApiDoc;

/// The document as served and committed (pretty JSON, with a final newline).
pub fn document_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json().map(|json| json + "\n")
}

static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| document_json().map_err(|e| e.to_string()));

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "internal",
    responses((status = 200, description = "This document (OpenAPI 3.1).", body = Object)),
)]
pub(crate) async fn document() -> Response {
    match &*DOCUMENT {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        Err(e) => crate::unavailable("the OpenAPI document", e).into_response(),
    }
}

// Served by handoff-telemetry on both listeners (`/metrics` on the internal one only);
// declared here so that the document covers every endpoint.

/// The process answers (liveness).
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "public",
    responses((status = 200, description = "Alive.", body = String, content_type = "text/plain", example = "ok")),
)]
#[allow(dead_code)]
fn healthz() {}

/// Its dependencies (Redis, the broker) answer (readiness).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "public",
    responses(
        (status = 200, description = "Ready.", body = ReadinessReport),
        (status = 503, description = "A dependency does not answer.", body = ReadinessReport),
    ),
)]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics (text exposition format; see docs/metrics.md).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "internal",
    responses((status = 200, description = "The metrics.", body = String, content_type = "text/plain")),
)]
#[allow(dead_code)]
fn metrics() {}

/// Says which listener serves each path, by tag and by `servers`.
struct Listeners;

fn public_server() -> Server {
    ServerBuilder::new()
        .url("http://127.0.0.1:8080")
        .description(Some("public listener (ingest.listen)"))
        .build()
}

fn internal_server() -> Server {
    ServerBuilder::new()
        .url("http://127.0.0.1:9464")
        .description(Some("internal listener (admin.listen)"))
        .build()
}

impl Modify for Listeners {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.servers = Some(vec![public_server(), internal_server()]);
        for (path, item) in &mut openapi.paths.paths {
            let (servers, tags) = if INTERNAL_PATHS.contains(&path.as_str()) {
                (vec![internal_server()], vec!["internal"])
            } else if SHARED_PATHS.contains(&path.as_str()) {
                (
                    vec![public_server(), internal_server()],
                    vec!["public", "internal"],
                )
            } else {
                (vec![public_server()], vec!["public"])
            };
            item.servers = Some(servers);
            for operation in [&mut item.get, &mut item.put, &mut item.post]
                .into_iter()
                .flatten()
            {
                operation.tags = Some(tags.iter().map(|t| (*t).to_owned()).collect());
            }
        }
    }
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`handoff keys new`), as `Authorization: Bearer <key>`. \
                         Each operation lists the scope it needs: `leads:write`, \
                         `dispositions:write`, `reps:read` (also granted by `reps:write`), \
                         `reps:write`. A missing or unknown key is 401, a key without the \
                         scope 403.",
                    ))
                    .build(),
            ),
        );
        let api_key = |name: &str, description: &str| {
            ApiKeyValue::with_description(name.to_owned(), description.to_owned())
        };
        components.add_security_scheme(
            "form_token",
            SecurityScheme::ApiKey(ApiKey::Query(api_key(
                "form_token",
                "A web form's public token ([[ingest.forms]]): grants `leads:write` only. \
                 Sent as the `form_token` form field or query parameter.",
            ))),
        );
        let webhook = "Standard Webhooks: `webhook-signature` is `v1,<base64 HMAC-SHA256 of \
                       \"{webhook-id}.{webhook-timestamp}.{body}\">` with the source's secret; \
                       the timestamp (Unix seconds) must be within 5 minutes of the server's \
                       clock; `webhook-id` is the idempotency key. All three are required.";
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(api_key(name, webhook))),
            );
        }
    }
}

/// An error answer with the error body and, where sent, its headers.
fn error_response(
    description: &str,
    headers: &[(&str, &str, Type)],
) -> RefOr<utoipa::openapi::Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    for (name, about, kind) in headers {
        response = response.header(
            *name,
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(kind.clone()))
                .description(Some(*about))
                .build(),
        );
    }
    RefOr::T(response.build())
}

const RETRY_AFTER: (&str, &str, Type) = (
    "Retry-After",
    "Seconds to wait before retrying.",
    Type::Integer,
);

/// Declares the reusable error answers: `Name: "description", headers...;`.
macro_rules! error_responses {
    ($($name:ident: $description:literal $(, $header:expr)*;)*) => {$(
        #[doc = $description]
        pub(crate) struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
                (stringify!($name), error_response($description, &[$($header),*]))
            }
        }
    )*};
}

error_responses! {
    BadRequest: "The body is not well-formed (JSON syntax, form encoding): `malformed_body`.";
    Unauthorized: "No credentials, or unknown ones (an API key, form token or webhook \
        signature): `unauthorized`.",
        ("WWW-Authenticate", "`Bearer realm=\"handoff\"`.", Type::String);
    Forbidden: "The key lacks the operation's scope, or acts outside what it may (a rep's \
        key for another rep's lead): `forbidden`.";
    NotFound: "The lead, rep or webhook source does not exist: `not_found`.";
    RequestTimeout: "The request was not completed within `ingest.limits.request_timeout_ms`: \
        `request_timeout`.";
    Conflict: "A request with this Idempotency-Key is still in progress: \
        `idempotency_key_in_use`.", RETRY_AFTER;
    PayloadTooLarge: "The body is larger than `ingest.max_body_bytes`: `body_too_large`.";
    UnsupportedMediaType: "The Content-Type is not one the operation takes: \
        `unsupported_media_type`.";
    UnprocessableEntity: "Well-formed, but invalid: `validation_failed` with every offending \
        field in `fields`; or `idempotency_key_reused` (the key came with another body).";
    TooManyRequests: "A rate limit (per key, per address) was hit: `rate_limited`.", RETRY_AFTER;
    ServiceUnavailable: "A dependency (the broker, Redis) is unavailable, nothing was \
        recorded (`unavailable`); or too many requests are in progress (`overloaded`).",
        RETRY_AFTER;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed document is the one the code generates, so clients can rely on it.
    #[test]
    fn committed_openapi_document_matches_the_code() {
        let generated = match document_json() {
            Ok(json) => json,
            Err(e) => panic!("cannot render the OpenAPI document: {e}"),
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            if let Err(e) = std::fs::write(&path, &generated) {
                panic!("cannot write {}: {e}", path.display());
            }
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json differs from what the code generates; regenerate it with \
             `UPDATE_OPENAPI=1 cargo test -p handoff-ingest openapi` and commit it"
        );
    }

    #[test]
    fn every_operation_has_a_listener_and_every_error_its_body() {
        let doc = ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            assert!(item.servers.is_some(), "{path} has no server");
        }
        let json = match serde_json::to_value(&doc) {
            Ok(json) => json,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(json["openapi"], "3.1.0");
        for status in [
            "400", "401", "403", "404", "408", "409", "413", "415", "422", "429", "503",
        ] {
            let used = json["paths"]
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(_, item)| item.as_object().into_iter().flatten())
                .any(|(_, op)| !op["responses"][status].is_null());
            assert!(used, "no operation documents {status}");
        }
    }
}
