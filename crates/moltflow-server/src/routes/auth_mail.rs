//! `/auth/*` routes driven by mail: password reset, email verification, magic links, and
//! setting a password (API.md §3).

use axum::Json;
use axum::http::StatusCode;
use moltflow_types::{
    AcceptedBody, DoneBody, EmailRequest, ErrorBody, ResetPasswordRequest, SetPasswordRequest, TokenPair, TokenRequest,
    ValidationErrorBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{JsonBody, Origin};
use crate::principal::SignedIn;
use crate::routes::ApiRoutes as _;
use crate::routes::throttle;
use crate::state::AppState;
use moltflow_app::services::recovery::{ACCEPTED, LinkRequest, parse_mail_request};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .api_routes(routes!(forgot_password))
        .api_routes(routes!(reset_password))
        .api_routes(routes!(verify_email))
        .api_routes(routes!(resend_verification))
        .api_routes(routes!(request_magic_link))
        .api_routes(routes!(verify_magic_link))
        .api_routes(routes!(set_password))
}

fn accepted() -> (StatusCode, Json<AcceptedBody>) {
    (StatusCode::ACCEPTED, Json(AcceptedBody { detail: ACCEPTED.to_owned() }))
}

fn done(detail: &str) -> Json<DoneBody> {
    Json(DoneBody { detail: detail.to_owned() })
}

/// Mail a password reset link (valid 1 hour) if an account has this address. The answer is the
/// same whether or not it has; at most 3 mails per address per hour.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = EmailRequest, responses(
    (status = 202, description = "Accepted (always the same body)", body = AcceptedBody),
    (status = 422, description = "Not an email address", body = ValidationErrorBody),
    (status = 429, description = "More than 10 requests a minute from this IP (`rate_limited`)", body = ErrorBody),
))]
async fn forgot_password(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<EmailRequest>,
) -> ApiResult<(StatusCode, Json<AcceptedBody>)> {
    request_mail_link(&state, &origin, &req.email, LinkRequest::PasswordReset).await?;
    Ok(accepted())
}

/// Set a new password with the token of a reset mail. Verifies the email and ends every session.
#[utoipa::path(post, path = "/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest, responses(
    (status = 200, description = "Password reset", body = DoneBody),
    (status = 400, description = "Invalid, used, superseded or expired token (`invalid_token`)", body = ErrorBody),
    (status = 422, description = "Password too short, too long, too weak or equal to the email", body = ValidationErrorBody),
))]
async fn reset_password(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<ResetPasswordRequest>,
) -> ApiResult<Json<DoneBody>> {
    state.recovery().reset_password(req, &origin).await?;
    Ok(done("Your password has been reset. Sign in with the new one."))
}

/// Confirm the email address with the token of a verification mail. The first proof of the
/// mailbox takes back every session, API key, pending invitation and the password set before it
/// (API.md §3); the answer and a mail say what was removed.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", request_body = TokenRequest, responses(
    (status = 200, description = "Email verified", body = DoneBody),
    (status = 400, description = "Invalid, used or expired token (`invalid_token`)", body = ErrorBody),
))]
async fn verify_email(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<TokenRequest>,
) -> ApiResult<Json<DoneBody>> {
    let detail = match state.verification().verify_email(&req.token, &origin).await? {
        None => "Your email address is verified.".to_owned(),
        Some(taken) => format!(
            "Your email address is verified. As this is the first proof of the mailbox, everything set up \
             before it was taken back ({}); sign in with a magic link.",
            taken.summary()
        ),
    };
    Ok(Json(DoneBody { detail }))
}

/// Mail a new verification link to the caller (nothing is sent when already verified, or after
/// 3 mails to the address within the hour).
#[utoipa::path(post, path = "/auth/verify-email/resend", tag = "auth", security(("bearer" = [])), responses(
    (status = 202, description = "Accepted", body = AcceptedBody),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Called with an API key (`user_principal_required`)", body = ErrorBody),
))]
async fn resend_verification(state: AppState, principal: SignedIn) -> ApiResult<(StatusCode, Json<AcceptedBody>)> {
    state.verification().resend(&principal).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AcceptedBody { detail: "If your address is not verified yet, we have sent it a new link.".to_owned() }),
    ))
}

/// Mail a sign-in link (valid 15 minutes) if an account has this address; never creates an
/// account. The answer is the same whether or not it has; at most 3 mails per address per hour.
#[utoipa::path(post, path = "/auth/magic-link/request", tag = "auth", request_body = EmailRequest, responses(
    (status = 202, description = "Accepted (always the same body)", body = AcceptedBody),
    (status = 422, description = "Not an email address", body = ValidationErrorBody),
    (status = 429, description = "More than 10 requests a minute from this IP (`rate_limited`)", body = ErrorBody),
))]
async fn request_magic_link(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<EmailRequest>,
) -> ApiResult<(StatusCode, Json<AcceptedBody>)> {
    request_mail_link(&state, &origin, &req.email, LinkRequest::MagicLink).await?;
    Ok(accepted())
}

/// Sign in with the token of a magic-link mail; verifies the email.
#[utoipa::path(post, path = "/auth/magic-link/verify", tag = "auth", request_body = TokenRequest, responses(
    (status = 200, description = "Signed in", body = TokenPair),
    (status = 400, description = "Invalid, used, superseded or expired token (`invalid_token`)", body = ErrorBody),
))]
async fn verify_magic_link(
    state: AppState,
    origin: Origin,
    JsonBody(req): JsonBody<TokenRequest>,
) -> ApiResult<Json<TokenPair>> {
    Ok(Json(state.recovery().verify_magic_link(&req.token, &origin).await?))
}

/// Set a first password, or change it with `current_password`; a change ends the other sessions.
#[utoipa::path(post, path = "/auth/set-password", tag = "auth", security(("bearer" = [])), request_body = SetPasswordRequest, responses(
    (status = 200, description = "Password set", body = DoneBody),
    (status = 400, description = "Wrong current password (`invalid_current_password`)", body = ErrorBody),
    (status = 401, description = "Not authenticated", body = ErrorBody),
    (status = 403, description = "Called with an API key (`user_principal_required`)", body = ErrorBody),
    (status = 422, description = "Weak password, or `current_password` missing while one is set", body = ValidationErrorBody),
    (status = 429, description = "Too many wrong passwords (`login_locked`), or too many failed authentications from this network (`rate_limited`)", body = ErrorBody),
))]
async fn set_password(
    state: AppState,
    principal: SignedIn,
    origin: Origin,
    JsonBody(req): JsonBody<SetPasswordRequest>,
) -> ApiResult<Json<DoneBody>> {
    state.users().set_password(&principal, req, &origin).await?;
    Ok(done("Your password is set."))
}

/// A forgot-password or magic-link request, as every way in takes it: the per-address throttle,
/// then the address checked and the link mailed in the background, so the answer is the same
/// whether or not the address has an account.
pub async fn request_mail_link(state: &AppState, origin: &Origin, email: &str, request: LinkRequest) -> ApiResult<()> {
    let (limiter, detail) = match request {
        LinkRequest::MagicLink => {
            (&state.rate_limits.magic_link_ip, "Too many sign-in link requests from this address")
        }
        LinkRequest::PasswordReset => {
            (&state.rate_limits.forgot_password_ip, "Too many password reset requests from this address")
        }
    };
    throttle(limiter, origin, detail, state.clock.now_ms()).await?;
    state.0.mail_link_in_background(parse_mail_request(email)?, request);
    Ok(())
}
