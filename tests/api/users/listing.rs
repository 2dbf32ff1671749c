//! Listing: pagination, ordering, search, links behind proxies.

use serde_json::{Value, json};

use crate::{
    on_both_backends,
    support::{
        app::{ADMIN, ALL, Options, TestApp, id_of, ids, search, subs},
        assert::{assert_problem, expect_json, header},
        db::{Backend, day, seed, set_created_at, set_last_seen},
    },
};

on_both_backends!(
    list_pages_with_limit_and_offset_and_absolute_links,
    list_orders_by_id_created_at_and_email_with_ties_broken_by_id,
    search_matches_sub_email_and_name_case_insensitively,
    hostile_search_text_matches_only_literally_and_never_fails,
    page_links_follow_forwarded_headers_only_from_trusted_proxies,
    the_count_follows_every_write_at_once,
    a_page_asked_for_again_is_read_once_until_a_user_is_written,
);

// ---------------------------------------------------------------- listing

async fn list_pages_with_limit_and_offset_and_absolute_links(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    seed(&app.database_url, 105).await;
    let base = format!("{}/users", app.address);
    let mut all = ids(&app.list(&admin, "?limit=100").await);
    all.extend(ids(&app.list(&admin, "?limit=100&offset=100").await));
    assert_eq!(all.len(), 106, "the admin and 105 seeded users");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "by id by default");

    let link = |q: &str| Value::String(format!("{base}?{q}"));
    // (query, offset, page size, next, previous)
    #[rustfmt::skip]
    let cases = [
        ("", 0, 50, link("limit=50&offset=50"), Value::Null),
        ("?limit=10", 0, 10, link("limit=10&offset=10"), Value::Null),
        ("?limit=10&offset=10", 10, 10, link("limit=10&offset=20"), link("limit=10")),
        ("?offset=15&limit=10", 15, 10, link("limit=10&offset=25"), link("limit=10&offset=5")),
        ("?limit=10&offset=100", 100, 6, Value::Null, link("limit=10&offset=90")),
        ("?limit=10&offset=500", 500, 0, Value::Null, link("limit=10&offset=490")),
        ("?limit=100", 0, 100, link("limit=100&offset=100"), Value::Null),
        ("?limit=1000", 0, 100, link("limit=100&offset=100"), Value::Null),
        ("?limit=99999999999", 0, 100, link("limit=100&offset=100"), Value::Null),
    ];
    for (query, offset, size, next, previous) in cases {
        let page = app.list(&admin, query).await;
        assert_eq!(page["count"], 106, "{query}: count");
        let expected: Vec<i64> = all.iter().copied().skip(offset).take(size).collect();
        assert_eq!(ids(&page), expected, "{query}: results");
        assert_eq!(page["next"], next, "{query}: next");
        assert_eq!(page["previous"], previous, "{query}: previous");
    }

    // The links are followable as they are: walking them visits every row once.
    let pages = app.walk(&admin, format!("{base}?limit=30")).await;
    assert_eq!(pages.len(), 4, "106 rows, 30 a page");
    let walked: Vec<i64> = pages.iter().flat_map(ids).collect();
    assert_eq!(walked, all, "walking next links");
}

async fn list_orders_by_id_created_at_and_email_with_ties_broken_by_id(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    // (sub, email, day created): ties on email and on created_at on purpose.
    let rows = [
        ("auth0|o1", Some("carol@example.com"), 2),
        ("auth0|o2", Some("bob@example.com"), 1),
        ("auth0|o3", None, 2),
        ("auth0|o4", Some("alice@example.com"), 1),
        ("auth0|o5", Some("bob@example.com"), 2),
    ];
    for (sub, email, created) in rows {
        app.create_user(&admin, json!({"sub": sub, "email": email}))
            .await;
        set_created_at(&app.database_url, sub, day(created)).await;
    }
    set_created_at(&app.database_url, ADMIN, day(3)).await;

    #[rustfmt::skip]
    let cases: [(&str, &[&str]); 4] = [
        ("id", &[ADMIN, "auth0|o1", "auth0|o2", "auth0|o3", "auth0|o4", "auth0|o5"]),
        ("created_at", &["auth0|o2", "auth0|o4", "auth0|o1", "auth0|o3", "auth0|o5", ADMIN]),
        // Missing emails last.
        ("email", &["auth0|o4", "auth0|o2", "auth0|o5", "auth0|o1", ADMIN, "auth0|o3"]),
        // Ordering applies within a search.
        ("email&search=bob", &["auth0|o2", "auth0|o5"]),
    ];
    for (ordering, ascending) in cases {
        let mut descending = ascending.to_vec();
        descending.reverse();
        for (ordering, expected) in [
            (ordering.to_owned(), ascending.to_vec()),
            (format!("-{ordering}"), descending),
        ] {
            let page = app.list(&admin, &format!("?ordering={ordering}")).await;
            assert_eq!(subs(&page), expected, "ordering={ordering}");

            // Two at a time, following next: the same order, nothing repeated or skipped.
            let url = format!("{}/users?limit=2&ordering={ordering}", app.address);
            let pages = app.walk(&admin, url).await;
            let field = ordering.split('&').next().unwrap_or_default();
            for page in &pages {
                if let Some(link) = page["next"].as_str() {
                    assert!(
                        link.contains(&format!("ordering={field}")),
                        "ordering={ordering}: next keeps the ordering: {link}"
                    );
                }
            }
            let walked: Vec<String> = pages.iter().flat_map(subs).collect();
            assert_eq!(walked, expected, "ordering={ordering}, page by page");
        }
    }
}

async fn search_matches_sub_email_and_name_case_insensitively(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    for body in [
        json!({"sub": "auth0|ada", "email": "Ada.Lovelace@Example.com", "name": "Ada Lovelace"}),
        json!({"sub": "google-oauth2|GRACE", "email": "grace@navy.mil", "name": "Grace Hopper"}),
        json!({"sub": "auth0|linus"}),
    ] {
        app.create_user(&admin, body).await;
    }
    let cases: [(&str, &[&str]); 11] = [
        ("ada", &["auth0|ada"]),
        ("LOVELACE", &["auth0|ada"]),
        ("example.COM", &["auth0|ada"]),
        ("grace", &["google-oauth2|GRACE"]),
        ("GOOGLE-OAUTH2|", &["google-oauth2|GRACE"]),
        ("hOPPER", &["google-oauth2|GRACE"]),
        ("NAVY.mil", &["google-oauth2|GRACE"]),
        ("auth0|", &[ADMIN, "auth0|ada", "auth0|linus"]),
        ("  linus  ", &["auth0|linus"]),
        ("nobody", &[]),
        (
            "",
            &[ADMIN, "auth0|ada", "google-oauth2|GRACE", "auth0|linus"],
        ),
    ];
    for (text, expected) in cases {
        let page = app.list(&admin, &search(text)).await;
        assert_eq!(subs(&page), expected, "search {text:?}");
        assert_eq!(page["count"], expected.len(), "search {text:?}: count");
    }
}

async fn hostile_search_text_matches_only_literally_and_never_fails(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    for (sub, name) in [
        ("auth0|h1", "50%_off"),
        ("auth0|h2", "O'Brien"),
        ("auth0|h3", r"back\slash"),
        ("auth0|h4", "under_score"),
        ("auth0|h5", r#"say "hi""#),
    ] {
        app.create_user(&admin, json!({"sub": sub, "name": name}))
            .await;
    }
    let cases: [(&str, &[&str]); 15] = [
        ("%", &["auth0|h1"]),
        ("_", &["auth0|h1", "auth0|h4"]),
        ("%_", &["auth0|h1"]),
        ("0%_O", &["auth0|h1"]),
        ("%%", &[]),
        ("_%", &[]),
        (r"\", &["auth0|h3"]),
        (r"\%", &[]),
        (r"k\s", &["auth0|h3"]),
        ("'", &["auth0|h2"]),
        ("\"", &["auth0|h5"]),
        ("' OR 1=1 --", &[]),
        ("' OR '1'='1", &[]),
        ("\"; DROP TABLE users; --", &[]),
        ("'; DELETE FROM users; --", &[]),
    ];
    for (text, expected) in cases {
        let page = app.list(&admin, &search(text)).await;
        assert_eq!(subs(&page), expected, "search {text:?}");
        assert_eq!(page["count"], expected.len(), "search {text:?}: count");
    }
    // Text no row can hold is refused, not passed to the database.
    for text in ["a\u{0}b", "\u{0}", "a\u{7}b"] {
        let r = app.get(&format!("/users{}", search(text)), &admin).await;
        let problem = assert_problem(r, 400, &format!("search {text:?}")).await;
        assert_eq!(problem["field"], "search", "search {text:?}: {problem}");
    }
    let r = app
        .get(&format!("/users{}", search(&"x".repeat(256))), &admin)
        .await;
    let problem = assert_problem(r, 400, "search of 256 characters").await;
    assert_eq!(problem["field"], "search", "{problem}");
    assert_eq!(app.count_users(&admin).await, 6, "every row is still there");
}

// ---------------------------------------------------------------- proxies

async fn page_links_follow_forwarded_headers_only_from_trusted_proxies(backend: Backend) {
    let trusted =
        TestApp::spawn_with(Options::new(backend.clone()).env("TRUSTED_PROXIES", "127.0.0.1"))
            .await;
    let untrusted = TestApp::spawn_on(backend).await;
    let x_forwarded: &[(&str, &str)] = &[
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com"),
    ];
    let forwarded: &[(&str, &str)] = &[("forwarded", "proto=https;host=api.example.com")];
    let (public, own) = ("https://api.example.com", untrusted.address.as_str());
    // (case, app, headers sent, expected base URL)
    #[rustfmt::skip]
    let cases = [
        ("trusted, X-Forwarded-*", &trusted, x_forwarded, public),
        ("trusted, Forwarded", &trusted, forwarded, public),
        ("trusted, no headers", &trusted, &[][..], trusted.address.as_str()),
        ("untrusted, X-Forwarded-*", &untrusted, x_forwarded, own),
        ("untrusted, Forwarded", &untrusted, forwarded, own),
    ];
    for (i, (case, app, headers, base)) in cases.into_iter().enumerate() {
        let admin = app.token(ADMIN, ALL);
        let with_headers = |mut request: reqwest::RequestBuilder| {
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.bearer_auth(&admin)
        };
        // Two rows per case, so that page 2 of 1 always has a next page.
        for suffix in ["a", "b"] {
            let r = with_headers(app.client.post(app.url("/users")))
                .json(&json!({"sub": format!("auth0|proxied-{i}-{suffix}")}))
                .send()
                .await
                .expect("request");
            let location = header(&r, "location");
            let created = expect_json(r, 201, case).await;
            assert_eq!(
                location,
                Some(format!("{base}/users/{}", id_of(&created))),
                "{case}: Location"
            );
        }

        let r = with_headers(app.client.get(app.url("/users?limit=1&offset=1")))
            .send()
            .await
            .expect("request");
        let page = expect_json(r, 200, case).await;
        let next = page["next"].as_str().unwrap_or_default();
        assert!(
            next.starts_with(&format!("{base}/users?")),
            "{case}: next {next}"
        );
        assert_eq!(next, format!("{base}/users?limit=1&offset=2"), "{case}");
        assert_eq!(
            page["previous"],
            format!("{base}/users?limit=1"),
            "{case}: previous"
        );
    }
}

// ------------------------------------------------------------------ count

/// Counts are cached per search text: each write (a first sighting too)
/// shows in the next page's count, whichever search it concerns.
async fn the_count_follows_every_write_at_once(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    assert_eq!(
        counts_of(&app, &admin).await,
        (json!(1), json!(0)),
        "the admin alone"
    );
    assert_eq!(
        counts_of(&app, &admin).await,
        (json!(1), json!(0)),
        "again, from the cache"
    );

    expect_json(
        app.get_me(&app.token("auth0|newcomer", &[])).await,
        200,
        "first sight",
    )
    .await;
    assert_eq!(
        counts_of(&app, &admin).await,
        (json!(2), json!(0)),
        "after a first sighting"
    );

    let created = app
        .create_user(&admin, json!({"sub": "auth0|made", "name": "FindMe Later"}))
        .await;
    assert_eq!(
        counts_of(&app, &admin).await,
        (json!(3), json!(1)),
        "after a create"
    );

    let id = id_of(&created);
    let r = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/users/{id}"),
            &admin,
            &json!({"name": "x"}),
        )
        .await;
    assert_eq!(r.status(), 200, "rename");
    assert_eq!(
        counts_of(&app, &admin).await,
        (json!(3), json!(0)),
        "after a rename out of the search"
    );

    let r = app.delete(&format!("/users/{id}"), &admin).await;
    assert_eq!(r.status(), 204, "delete");
    assert_eq!(
        counts_of(&app, &admin).await,
        (json!(2), json!(0)),
        "after a delete"
    );
}

/// A page is kept for a second: asked for again, it is served without a
/// query (a row changed behind the app's back does not show), until a write
/// through the app (a rename, a first sighting) shows in the next one.
async fn a_page_asked_for_again_is_read_once_until_a_user_is_written(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    let made = app
        .create_user(&admin, json!({"sub": "auth0|paged", "name": "Before"}))
        .await;
    // On PostgreSQL this replica hears of its own create a moment later,
    // and forgets its pages then: a page kept before may be read again.
    let mut tries = 0;
    loop {
        let kept = app.list(&admin, "?limit=5").await;
        set_last_seen(&app.database_url, "auth0|paged", Some(day(tries + 1))).await;
        if app.list(&admin, "?limit=5").await == kept {
            break;
        }
        tries += 1;
        assert!(
            tries < 20,
            "a page asked for again was never served from the cache"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let r = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/users/{}", id_of(&made)),
            &admin,
            &json!({"name": "After"}),
        )
        .await;
    assert_eq!(r.status(), 200, "rename");
    let renamed = app.list(&admin, "?limit=5").await;
    assert_eq!(renamed["results"][1]["name"], "After", "{renamed}");

    expect_json(
        app.get_me(&app.token("auth0|paged-newcomer", &[])).await,
        200,
        "first sight",
    )
    .await;
    let grown = app.list(&admin, "?limit=5").await;
    assert_eq!(grown["count"], 3, "{grown}");
    assert_eq!(
        grown["results"][2]["sub"], "auth0|paged-newcomer",
        "{grown}"
    );
}

/// The count of all users and of those matching "findme".
async fn counts_of(app: &TestApp, admin: &str) -> (Value, Value) {
    let all = app.list(admin, "?limit=1").await["count"].clone();
    let found = app.list(admin, &search("findme")).await["count"].clone();
    (all, found)
}
