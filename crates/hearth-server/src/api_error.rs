//! How the web API refuses a request, the players' and the administrator's
//! alike: a status, a stable code for programs, a sentence for humans that
//! says what to do, and when trying again later can work, after how long.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::accounts::AccountError;
use crate::web_state::WebState;

pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

/// A refusal with no advice on when to try again.
pub(crate) fn refuse(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        match self.retry_after {
            Some(seconds) => (
                self.status,
                [(header::RETRY_AFTER, seconds.to_string())],
                body,
            )
                .into_response(),
            None => (self.status, body).into_response(),
        }
    }
}

impl ApiError {
    /// An account operation's failure, counted by its code for /metrics.
    pub(crate) fn from_account(state: &WebState, error: AccountError) -> Self {
        let status = match &error {
            AccountError::InvalidName(_) | AccountError::WeakPassword(_) => StatusCode::BAD_REQUEST,
            AccountError::NameTaken(_) => StatusCode::CONFLICT,
            AccountError::WrongCredentials
            | AccountError::TokenUnknown
            | AccountError::TokenExpired
            | AccountError::TokenRevoked
            | AccountError::WrongTokenKind { .. } => StatusCode::UNAUTHORIZED,
            AccountError::Locked { .. } => StatusCode::LOCKED,
            AccountError::Disabled => StatusCode::FORBIDDEN,
            AccountError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AccountError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AccountError::Storage(e) => {
                tracing::error!("storage error in the API: {e}");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        state.api_errors.add(error.code());
        ApiError {
            status,
            code: error.code(),
            message: error.to_string(),
            retry_after: error.retry_after(),
        }
    }
}
