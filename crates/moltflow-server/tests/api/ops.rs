use crate::common::TestApp;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let h = app.get("/healthz", None).await;
    assert_eq!((h.status, h.body["status"].as_str()), (200, Some("ok")));
    let r = app.send(app.client.get(format!("{}/readyz", app.base))).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.store.close().await;
    let r = app.get("/readyz", None).await;
    r.assert(503, "not_ready");
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = TestApp::spawn().await;
    app.get("/healthz", None).await;
    app.get("/auth/me", None).await;
    let r = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(r.status, 200);
    let text = r.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains(r#"http_requests_total{method="GET",route="/api/v2/auth/me",status="401"}"#), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
}

/// Every route of the contract implemented so far, as (method, path).
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("post", "/auth/register"),
    ("post", "/auth/login"),
    ("post", "/auth/refresh"),
    ("get", "/auth/me"),
    ("get", "/api-keys"),
    ("post", "/api-keys"),
    ("get", "/api-keys/scopes"),
    ("get", "/api-keys/{id}"),
    ("delete", "/api-keys/{id}"),
    ("post", "/api-keys/{id}/rotate"),
    ("post", "/auth/logout"),
    ("get", "/tenant/settings"),
    ("patch", "/tenant/settings"),
    ("get", "/tenant/consents"),
    ("get", "/tenant/members"),
    ("patch", "/tenant/members/{user_id}"),
    ("delete", "/tenant/members/{user_id}"),
    ("get", "/audit-logs"),
    ("get", "/tenant/invitations"),
    ("post", "/tenant/invitations"),
    ("delete", "/tenant/invitations/{id}"),
    ("post", "/auth/accept-invitation"),
    ("get", "/billing/plans"),
    ("get", "/billing/subscription"),
    ("post", "/billing/checkout"),
    ("post", "/billing/portal"),
    ("post", "/billing/cancel"),
    ("post", "/billing/signup-checkout"),
    ("post", "/billing/webhook"),
    ("post", "/auth/forgot-password"),
    ("post", "/auth/reset-password"),
    ("post", "/auth/verify-email"),
    ("post", "/auth/verify-email/resend"),
    ("post", "/auth/magic-link/request"),
    ("post", "/auth/magic-link/verify"),
    ("post", "/auth/set-password"),
    ("get", "/users/me"),
    ("patch", "/users/me"),
    ("delete", "/users/me"),
    ("post", "/usage/events"),
    ("post", "/usage/consume"),
    ("put", "/usage/gauges"),
    ("get", "/usage/current"),
    ("get", "/usage/history"),
    ("get", "/usage/daily"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/.well-known/jwks.json"),
];

#[tokio::test]
async fn openapi_describes_every_route_with_schemas() {
    let app = TestApp::spawn().await;
    let spec = app.get("/openapi.json", None).await.body;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    for (method, path) in CONTRACT_ROUTES {
        let op = &paths.get(*path).unwrap_or_else(|| panic!("{path} missing from the spec"))[*method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
    }
    for name in [
        "TokenPair",
        "ErrorBody",
        "ValidationErrorBody",
        "MeResponse",
        "RegisterRequest",
        "UsageCurrent",
        "QuotaExceededBody",
    ] {
        assert!(spec["components"]["schemas"][name].is_object(), "schema {name}");
    }
    assert!(!spec["components"]["schemas"]["TokenPair"]["example"].is_null());
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = TestApp::spawn().await;
    let spec = app.get("/openapi.json", None).await.body;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let url = app.url(path);
            let req = app.client.request(method.to_uppercase().parse().unwrap(), &url);
            let r = app.send(req).await;
            let unrouted = r.status == 405 || (r.status == 404 && r.body["detail"] == "Not Found");
            assert!(!unrouted, "{method} {path} is documented but not routed ({})", r.status);
        }
    }
}
