//! The API's error answer: `{code, message}` with a stable code. Messages
//! name the field at fault and never carry personal data (IDs are masked).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use operations::error::chain;
use operations::{Classified, Kind};
use serde::Serialize;

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `bad_input`, `unauthorized`, ...
    pub code: &'static str,
    pub message: String,
    /// The input field at fault, when one is.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), field: None }
    }

    pub fn bad_input(field: Option<&str>, message: impl Into<String>) -> ApiError {
        let mut error = ApiError::new(StatusCode::BAD_REQUEST, "bad_input", message);
        error.field = field.map(str::to_string);
        error
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn overloaded(code: &'static str, message: &str) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// A failure of the server (storage, a task that died): the details go
    /// to the server's log, not to the client.
    pub fn internal(error: &anyhow::Error) -> ApiError {
        eprintln!("error: {error:#}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed; see its log")
    }
}

impl ApiError {
    /// An operation's error, answered by its kind: the message is the
    /// error's chain (operations never put personal data in messages
    /// beyond masked IDs); storage failures go to the server's log only.
    pub fn classified<E: Classified>(error: &E) -> ApiError {
        let message = chain(error);
        let mut answer = match error.kind() {
            Kind::BadInput => ApiError::new(StatusCode::BAD_REQUEST, "bad_input", message),
            Kind::Refused => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_refused", message),
            Kind::Conflict => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            Kind::NotFound => ApiError::not_found(message),
            Kind::Findings | Kind::Changed => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "findings", message),
            Kind::Unavailable => ApiError::overloaded("unavailable", &message),
            Kind::Failure => {
                eprintln!("error: {message}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed; see its log")
            }
        };
        answer.field = error.field().map(str::to_string);
        answer
    }
}

/// The body of every error answer (`Error` in the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// Stable, machine-readable: `bad_input`, `unauthorized`, ...
    pub code: &'static str,
    pub message: String,
    /// The input field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.code, message: self.message, field: self.field };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE || self.status == StatusCode::INSUFFICIENT_STORAGE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use operations::{RecordError, StorageError};
    use projections::family::Refusal;

    #[test]
    fn an_operations_error_is_answered_by_its_kind_naming_its_field() {
        let refused = RecordError::Refused(Refusal { field: Some("member"), reason: "not bound".into() });
        let answer = ApiError::classified(&refused);
        assert_eq!(
            (answer.status, answer.code, answer.field.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, "rule_refused", Some("member"))
        );
        let conflict =
            StorageError::Ledger(ledger::LedgerError::IdempotencyConflict { key: "k".into(), original_position: 3 });
        assert_eq!(ApiError::classified(&conflict).status, StatusCode::CONFLICT);
        let failed = StorageError::Ledger(ledger::LedgerError::Closed);
        let answer = ApiError::classified(&failed);
        assert_eq!(
            (answer.status, answer.message.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "the server failed; see its log")
        );
    }
}
