//! Admin operations and the permission each needs.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    on_both_backends,
    support::{
        app::{ALL, TestApp, id_of, subs},
        assert::{assert_problem, assert_user, challenge, expect_json, header, time},
        db::Backend,
    },
};

on_both_backends!(
    admins_create_read_replace_update_and_delete_users,
    creating_an_existing_sub_is_a_conflict_and_changes_nothing,
    reading_one_user_needs_read_users_unless_it_is_the_callers_own,
    each_admin_operation_without_its_permission_gets_403_insufficient_scope,
    permissions_in_the_scope_claim_count_as_well,
);

// ---------------------------------------------------------------- admin CRUD

async fn admins_create_read_replace_update_and_delete_users(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;

    let r = app
        .send_json(
            Method::POST,
            "/users",
            &admin,
            &json!({"sub": "auth0|crud", "email": "crud@example.com", "name": "Crud", "is_active": true}),
        )
        .await;
    let location = header(&r, "location").unwrap_or_default();
    let created = expect_json(r, 201, "create").await;
    let id = id_of(&created);
    assert_user(
        &created,
        &json!({"sub": "auth0|crud", "email": "crud@example.com", "name": "Crud",
                "is_active": true, "last_seen_at": null}),
        "create",
    );
    assert_eq!(created["updated_at"], created["created_at"], "create");
    assert_eq!(location, format!("{}/users/{id}", app.address), "Location");
    let r = app
        .client
        .get(&location)
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(r, 200, "GET Location").await,
        created,
        "GET Location"
    );

    let minimal = app
        .create_user(&admin, json!({"sub": "auth0|minimal"}))
        .await;
    assert_user(
        &minimal,
        &json!({"sub": "auth0|minimal", "email": null, "name": null, "is_active": true,
                "last_seen_at": null}),
        "create with the sub only",
    );

    let path = format!("/users/{id}");
    // (case, method, body, expected email, name, is_active)
    let steps = [
        (
            "PUT replaces, clearing what it leaves out",
            Method::PUT,
            json!({"name": "Replaced", "is_active": false}),
            Value::Null,
            json!("Replaced"),
            false,
        ),
        (
            "PUT with every field",
            Method::PUT,
            json!({"email": "put@example.com", "name": "Put", "is_active": true}),
            json!("put@example.com"),
            json!("Put"),
            true,
        ),
        (
            "PATCH changes only what it sends",
            Method::PATCH,
            json!({"email": "patched@example.com"}),
            json!("patched@example.com"),
            json!("Put"),
            true,
        ),
        (
            "PATCH with null clears",
            Method::PATCH,
            json!({"name": null, "is_active": false}),
            json!("patched@example.com"),
            Value::Null,
            false,
        ),
        (
            "PATCH reactivates",
            Method::PATCH,
            json!({"is_active": true}),
            json!("patched@example.com"),
            Value::Null,
            true,
        ),
    ];
    let mut before = created.clone();
    for (case, method, body, email, name, is_active) in steps {
        let r = app.send_json(method, &path, &admin, &body).await;
        let after = expect_json(r, 200, case).await;
        assert_user(
            &after,
            &json!({"id": id, "sub": "auth0|crud", "email": email, "name": name,
                    "is_active": is_active, "created_at": created["created_at"],
                    "last_seen_at": null}),
            case,
        );
        assert!(
            time(&after, "updated_at") > time(&before, "updated_at"),
            "{case}: updated_at moves"
        );
        assert_eq!(app.get_user(&admin, id).await, after, "{case}: as read");
        before = after;
    }

    let users_before = app.count_users(&admin).await;
    let r = app.delete(&path, &admin).await;
    assert_eq!(r.status(), 204, "DELETE");
    assert!(r.text().await.expect("body").is_empty(), "204 has no body");
    assert_eq!(
        app.count_users(&admin).await,
        users_before - 1,
        "one row fewer"
    );
    assert_eq!(
        app.get_user(&admin, id_of(&minimal)).await,
        minimal,
        "the other row stays"
    );

    let body = json!({"is_active": true});
    for (case, r) in [
        ("GET after DELETE", app.get(&path, &admin).await),
        (
            "PUT after DELETE",
            app.send_json(Method::PUT, &path, &admin, &body).await,
        ),
        (
            "PATCH after DELETE",
            app.send_json(Method::PATCH, &path, &admin, &body).await,
        ),
        ("DELETE after DELETE", app.delete(&path, &admin).await),
        (
            "GET of an id never used",
            app.get("/users/999999", &admin).await,
        ),
    ] {
        let problem = assert_problem(r, 404, case).await;
        assert_eq!(problem["type"], "urn:usergate:problem:not-found", "{case}");
    }
    assert_eq!(
        app.count_users(&admin).await,
        users_before - 1,
        "nothing recreated"
    );
}

async fn creating_an_existing_sub_is_a_conflict_and_changes_nothing(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    let existing = app
        .create_user(
            &admin,
            json!({"sub": "auth0|dup", "email": "first@example.com", "name": "First"}),
        )
        .await;
    let seen = expect_json(
        app.get_me(&app.token("auth0|seen", &[])).await,
        200,
        "first sight",
    )
    .await;
    for (case, target) in [
        ("a sub created by an admin", &existing),
        ("a sub created from its token", &seen),
    ] {
        let users_before = app.count_users(&admin).await;
        let body = json!({"sub": target["sub"], "email": "second@example.com", "name": "Second",
                          "is_active": false});
        let r = app.send_json(Method::POST, "/users", &admin, &body).await;
        assert_eq!(header(&r, "location"), None, "{case}: no Location");
        let problem = assert_problem(r, 409, case).await;
        assert_eq!(problem["type"], "urn:usergate:problem:conflict", "{case}");
        assert_eq!(
            &app.get_user(&admin, id_of(target)).await,
            target,
            "{case}: the row is unchanged"
        );
        assert_eq!(
            app.count_users(&admin).await,
            users_before,
            "{case}: no new row"
        );
    }
}

async fn reading_one_user_needs_read_users_unless_it_is_the_callers_own(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    let admin_row = expect_json(app.get_me(&admin).await, 200, "admin").await;
    let plain = app.token("auth0|plain", &["update:users"]);
    let own = expect_json(app.get_me(&plain).await, 200, "plain user").await;
    let own_path = format!("/users/{}", id_of(&own));

    let r = app.get(&own_path, &plain).await;
    assert_eq!(
        expect_json(r, 200, "own id").await,
        own,
        "own id without read:users"
    );
    let r = app.get(&own_path, &admin).await;
    assert_eq!(
        expect_json(r, 200, "an admin").await,
        own,
        "another's id with read:users"
    );

    for (case, path) in [
        ("another user's id", format!("/users/{}", id_of(&admin_row))),
        (
            "an absent id (no hint that it is absent)",
            "/users/999999".to_owned(),
        ),
    ] {
        let r = app.get(&path, &plain).await;
        let www = header(&r, "www-authenticate");
        let problem = assert_problem(r, 403, case).await;
        assert_eq!(
            www,
            Some(challenge(
                &app.address,
                r#"error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission""#
            )),
            "{case}"
        );
        assert_eq!(
            problem["type"], "urn:usergate:problem:insufficient-scope",
            "{case}"
        );
    }
}

// ---------------------------------------------------------------- permissions

async fn each_admin_operation_without_its_permission_gets_403_insufficient_scope(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    let target = app
        .create_user(&admin, json!({"sub": "auth0|target", "name": "Target"}))
        .await;
    let target_path = format!("/users/{}", id_of(&target));
    let path = target_path.as_str();
    let (create, deactivate) = (
        json!({"sub": "auth0|intruder"}),
        json!({"is_active": false}),
    );
    // (operation, method, path, body, the permission it needs)
    #[rustfmt::skip]
    let cases: [(&str, Method, &str, Option<&Value>, &str); 6] = [
        ("list", Method::GET, "/users", None, "read:users"),
        ("create", Method::POST, "/users", Some(&create), "create:users"),
        ("retrieve another user", Method::GET, path, None, "read:users"),
        ("replace", Method::PUT, path, Some(&deactivate), "update:users"),
        ("update", Method::PATCH, path, Some(&deactivate), "update:users"),
        ("delete", Method::DELETE, path, None, "delete:users"),
    ];
    let users_before = app.count_users(&admin).await;
    for (operation, method, path, body, needed) in cases {
        let others: Vec<&str> = ALL.iter().copied().filter(|p| *p != needed).collect();
        for (holder, permissions) in [("every other permission", others), ("none", vec![])] {
            let case = format!("{operation} with {holder}");
            let token = app.token("auth0|limited", &permissions);
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let r = request.send().await.expect("request");
            let www = header(&r, "www-authenticate");
            let problem = assert_problem(r, 403, &case).await;
            let params = format!(
                r#"error="insufficient_scope", scope="{needed}", error_description="this operation needs the {needed} permission""#
            );
            assert_eq!(www, Some(challenge(&app.address, &params)), "{case}");
            assert_eq!(
                problem["type"], "urn:usergate:problem:insufficient-scope",
                "{case}"
            );
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(needed)),
                "{case}: detail names {needed}: {problem}"
            );
        }
    }
    assert_eq!(
        app.get_user(&admin, id_of(&target)).await,
        target,
        "the row is unchanged"
    );
    // The limited caller's own row is the only new one.
    assert_eq!(
        app.count_users(&admin).await,
        users_before + 1,
        "nothing created"
    );
}

async fn permissions_in_the_scope_claim_count_as_well(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let reader = app.token_with(
        "auth0|scoped",
        &[],
        &json!({"scope": "openid read:users profile"}),
    );
    let page = app.list(&reader, "").await;
    assert_eq!(subs(&page), ["auth0|scoped"], "read:users from scope");
    let r = app
        .send_json(Method::POST, "/users", &reader, &json!({"sub": "auth0|x"}))
        .await;
    let www = header(&r, "www-authenticate");
    assert_problem(r, 403, "create:users is in neither claim").await;
    assert_eq!(
        www,
        Some(challenge(
            &app.address,
            r#"error="insufficient_scope", scope="create:users", error_description="this operation needs the create:users permission""#
        ))
    );
}
