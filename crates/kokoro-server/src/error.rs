//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the status
//! an OpenAI client expects: 400 bad input, 404 unknown voice or model, 413 too large, 503
//! overloaded or draining (with `Retry-After`), 504 past the deadline.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kokoro_engine::EngineError;
use serde::Serialize;

/// An error answer. Built from an [`EngineError`] or by the handlers for what they check first.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error` for the client's fault, `server_error` otherwise.
    pub kind: &'static str,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// A stable identifier (the engine's [`EngineError::code`] where it comes from the engine).
    pub code: &'static str,
    pub retry_after: Option<Duration>,
}

/// OpenAI's error shape.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub(crate) struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "ErrorDetail")]
pub(crate) struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl ApiError {
    /// 400: the request is malformed or a value is out of range.
    pub fn invalid(param: Option<&str>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code,
            retry_after: None,
        }
    }

    /// 404: no such voice, model, job or route.
    pub fn not_found(param: Option<&str>, code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, ..Self::invalid(param, code, message) }
    }

    /// 413: the body or the input is larger than the configured limit.
    pub fn too_large(param: Option<&str>, message: impl Into<String>) -> Self {
        Self { status: StatusCode::PAYLOAD_TOO_LARGE, ..Self::invalid(param, "too_large", message) }
    }

    /// 503 with `Retry-After`: overloaded, or draining before a shutdown.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            kind: "server_error",
            param: None,
            code,
            retry_after: Some(retry_after),
        }
    }

    /// 500: our fault, not the client's.
    /// 401: no API key, or one the server does not know (OpenAI's `invalid_api_key`).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, ..Self::invalid(None, "invalid_api_key", message) }
    }

    /// 403: a valid request this caller may not make (a wrong admin token).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, ..Self::invalid(None, code, message) }
    }

    /// 429 with Retry-After: a client over its rate limit (OpenAI's `rate_limit_exceeded`).
    pub fn rate_limited(message: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: message.into(),
            kind: "rate_limit_error",
            param: None,
            code: "rate_limit_exceeded",
            retry_after: Some(retry_after),
        }
    }

    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into(), kind: "server_error", param: None, code, retry_after: None }
    }

    /// The JSON body, as sent.
    pub fn to_json(&self) -> String {
        let body = Body { error: Inner { message: &self.message, kind: self.kind, param: self.param.as_deref(), code: self.code } };
        serde_json::to_string(&body).expect("an error serializes")
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let code = e.code();
        let message = e.to_string();
        match code {
            "unknown_voice" => Self::not_found(Some("voice"), code, message),
            "bad_voice" => Self::invalid(Some("voice"), code, message),
            "bad_language" => Self::invalid(Some("lang_code"), code, message),
            "bad_speed" => Self::invalid(Some("speed"), code, message),
            "bad_text" | "too_long" | "nothing_to_say" => Self::invalid(Some("input"), code, message),
            "overloaded" => {
                let retry_after = match e {
                    EngineError::Overloaded { retry_after } => retry_after,
                    _ => Duration::from_secs(1),
                };
                Self::unavailable(code, message, retry_after)
            }
            "shutting_down" => Self::unavailable(code, message, Duration::from_secs(5)),
            "timeout" => Self { status: StatusCode::GATEWAY_TIMEOUT, ..Self::internal(code, message) },
            // Cancelled is only seen by a client that is gone; device and voice_unavailable are ours.
            _ => Self::internal(code, message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, "application/json")], self.to_json()).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up: a client must not retry before the queue can take it.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_openai_statuses_and_fields() {
        let e = ApiError::from(EngineError::Voice(kokoro_voice::VoiceError::Unknown("zz_nobody".into())));
        assert_eq!((e.status, e.code, e.param.as_deref(), e.kind), (StatusCode::NOT_FOUND, "unknown_voice", Some("voice"), "invalid_request_error"));
        let e = ApiError::from(EngineError::Overloaded { retry_after: Duration::from_millis(2500) });
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        let response = e.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(ApiError::from(EngineError::Timeout).status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(ApiError::from(EngineError::NothingToSay).status, StatusCode::BAD_REQUEST);
        let json: serde_json::Value = serde_json::from_str(&ApiError::from(EngineError::NothingToSay).to_json()).unwrap();
        assert_eq!(json["error"]["param"], "input");
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert_eq!(json["error"]["code"], "nothing_to_say");
        assert!(json["error"]["message"].as_str().unwrap().contains("nothing to say"));
    }
}
