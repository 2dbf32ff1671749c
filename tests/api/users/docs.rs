//! The OpenAPI document and the docs page.

use serde_json::json;

use crate::{
    on_both_backends,
    support::{
        app::TestApp,
        assert::{expect_json, header},
        db::Backend,
    },
};

on_both_backends!(
    openapi_lists_every_users_operation_with_its_permission,
    docs_redirect_to_a_page_served_entirely_from_the_binary,
);

// ---------------------------------------------------------------- documentation

async fn openapi_lists_every_users_operation_with_its_permission(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let r = app.get_anonymous("/openapi.json").await;
    let doc = expect_json(r, 200, "GET /openapi.json without a token").await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "OpenAPI 3: {}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let expected: [(&str, &str, &[&str]); 8] = [
        ("/users", "get", &["read:users"]),
        ("/users", "post", &["create:users"]),
        ("/users/me", "get", &[]),
        ("/users/me", "patch", &[]),
        ("/users/{id}", "get", &["read:users"]),
        ("/users/{id}", "put", &["update:users"]),
        ("/users/{id}", "patch", &["update:users"]),
        ("/users/{id}", "delete", &["delete:users"]),
    ];
    for (path, method, permissions) in expected {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert_eq!(
            operation["security"],
            json!([{"bearer": permissions}]),
            "{method} {path}: security"
        );
        assert!(
            operation["responses"]["403"].is_object() || path == "/users/me",
            "{method} {path}: documents its 403"
        );
    }
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.starts_with("/users"))
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "put", "post", "patch", "delete"].contains(&k.as_str()))
                .map(move |method| format!("{method} {path}"))
        })
        .collect();
    documented.sort();
    let mut wanted: Vec<String> = expected
        .iter()
        .map(|(path, method, _)| format!("{method} {path}"))
        .collect();
    wanted.sort();
    assert_eq!(documented, wanted, "exactly the /users operations");
}

async fn docs_redirect_to_a_page_served_entirely_from_the_binary(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let r = app.get_anonymous("/docs").await;
    assert!(r.status().is_redirection(), "/docs: {}", r.status());
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("/docs/"),
        "/docs redirects"
    );

    let r = app.get_anonymous("/docs/").await;
    assert_eq!(r.status(), 200, "/docs/");
    assert!(
        header(&r, "content-type").is_some_and(|t| t.starts_with("text/html")),
        "/docs/ is HTML"
    );
    let html = r.text().await.expect("body");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "/docs/ references no other host: {html}"
    );
    // Every asset it names is served here.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".png"))
        .collect();
    assert!(
        assets.iter().any(|a| a.ends_with(".js")),
        "scripts: {assets:?}"
    );
    for asset in assets {
        let path = format!("/docs/{}", asset.trim_start_matches("./"));
        let r = app.get_anonymous(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        if path.ends_with("initializer.js") {
            let script = r.text().await.expect("body");
            assert!(
                script.contains("/openapi.json"),
                "{path} loads our document"
            );
            assert!(
                !script.contains("http://") && !script.contains("https://"),
                "{path}: {script}"
            );
        }
    }
}
