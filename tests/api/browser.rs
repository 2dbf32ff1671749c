//! CORS as a real browser enforces it: headless Chromium loads a page from
//! another loopback origin whose script calls the API with `fetch` and a
//! bearer token. Skipped (with a reason) when Chromium is missing, except in
//! CI, where that is a failure (`.ci/install-chromium.sh` installs it).

use std::{
    fs::File,
    io::Write,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::support::{
    app::{Options, TestApp},
    assert::header,
    db::Backend,
    spawn_server,
};

/// Debian's launcher (packages `chromium` and `chromium-driver`).
const CHROMIUM: &str = "/usr/bin/chromium";

/// A hung browser is killed after this long.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(30);

/// The page: runs `CONFIG.steps` in order, then writes one `RESULT:` line per
/// step and a final `DONE` into `#results`, which `--dump-dom` prints.
/// `--virtual-time-budget` keeps the page alive while fetches are in flight.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>usergate browser test</title></head>
<body><pre id="results">PENDING</pre>
<script>
const CONFIG = __CONFIG__;
async function run(step) {
  const init = { method: step.method, headers: {} };
  if (step.noCors) {
    init.mode = 'no-cors';
  } else {
    init.headers['Authorization'] = 'Bearer ' + CONFIG.token;
  }
  if (step.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(step.body);
  }
  try {
    const r = await fetch(CONFIG.api + step.path, init);
    if (r.type === 'opaque') return 'RESULT:OPAQUE';
    const id = r.headers.get('x-request-id') || '-';
    return 'RESULT:OK:' + r.status + ':' + id + ':' + (await r.text());
  } catch (e) {
    return 'RESULT:BLOCKED:' + e.name;
  }
}
(async () => {
  const lines = [];
  for (const step of CONFIG.steps) lines.push(await run(step));
  lines.push('DONE');
  document.getElementById('results').textContent = lines.join('\n');
})();
</script></body></html>
"#;

/// True when Chromium is there; outside CI, prints why the test is skipped.
fn chromium_available(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI is set but {CHROMIUM} is missing: the browser tests must run in CI \
             (.ci/install-chromium.sh installs it)"
        );
    }
    // Straight to stderr: libtest hides `eprintln!` output of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: {CHROMIUM} is missing \
         (apt-get install chromium chromium-driver, or run .ci/install-chromium.sh)"
    );
    false
}

/// A server on 127.0.0.1 for a page, started before the page exists: its
/// origin must be in `CORS_ALLOWED_ORIGINS` when the API starts.
struct PageHost {
    html: web::Data<Mutex<String>>,
    port: u16,
}

async fn serve_page(html: web::Data<Mutex<String>>) -> HttpResponse {
    let html = html.lock().expect("page").clone();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}

impl PageHost {
    fn start() -> Self {
        let html = web::Data::new(Mutex::new(String::new()));
        let page = html.clone();
        let port = spawn_server(move |routes| {
            routes
                .app_data(page.clone())
                .route("/", web::get().to(serve_page));
        });
        Self { html, port }
    }

    /// The origin the browser sends when the page is loaded from 127.0.0.1.
    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves `html` at `/` from now on.
    fn serve(&self, html: &str) {
        *self.html.lock().expect("page") = html.to_owned();
    }
}

/// One `fetch` the page makes.
fn bearer(method: &str, path: &str, body: Option<Value>) -> Value {
    match body {
        Some(body) => json!({"method": method, "path": path, "body": body}),
        None => json!({"method": method, "path": path}),
    }
}

/// A `no-cors` GET: resolves (opaque) whenever the server answers and fails
/// only when it cannot be reached, so it tells "blocked" from "unreachable".
fn reachability(path: &str) -> Value {
    json!({"method": "GET", "path": path, "noCors": true})
}

/// The page calling `api` with `token`.
fn page(api: &str, token: &str, steps: &[Value]) -> String {
    let config = json!({"api": api, "token": token, "steps": steps})
        .to_string()
        .replace("</", "<\\/");
    PAGE.replace("__CONFIG__", &config)
}

/// What the page saw for one step.
#[derive(Debug)]
enum Outcome {
    /// The script could read the answer.
    Answered {
        status: u16,
        /// `X-Request-Id`, readable only if exposed; "-" if not.
        request_id: String,
        body: Value,
    },
    /// A `no-cors` answer: the server answered, the script may not look.
    Opaque,
    /// `fetch` rejected, with this error name.
    Blocked(String),
}

fn parse_outcome(line: &str) -> Option<Outcome> {
    let rest = line.strip_prefix("RESULT:")?;
    if rest == "OPAQUE" {
        return Some(Outcome::Opaque);
    }
    if let Some(name) = rest.strip_prefix("BLOCKED:") {
        return Some(Outcome::Blocked(name.to_owned()));
    }
    let mut parts = rest.strip_prefix("OK:")?.splitn(3, ':');
    let status = parts.next()?.parse().ok()?;
    let request_id = parts.next()?.to_owned();
    let text = parts.next()?;
    let body = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
    Some(Outcome::Answered {
        status,
        request_id,
        body,
    })
}

/// Loads `url` in a fresh headless Chromium and returns the page's outcomes.
async fn visit(url: String) -> Vec<Outcome> {
    match actix_web::rt::task::spawn_blocking(move || visit_blocking(&url)).await {
        Ok(outcomes) => outcomes,
        // Fail with the browser thread's own message, not a JoinError around it.
        Err(err) => match err.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(err) => panic!("browser thread: {err}"),
        },
    }
}

fn visit_blocking(url: &str) -> Vec<Outcome> {
    let dir = tempfile::tempdir().expect("browser temp dir");
    let (dom_path, log_path) = (dir.path().join("dom.html"), dir.path().join("chromium.log"));
    let started = Instant::now();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&dom_path).expect("dom file"))
        .stderr(File::create(&log_path).expect("log file"))
        // Its own process group, so that a timeout kills the renderers too.
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {url} within {BROWSER_TIMEOUT:?}; its log ends:\n{}",
                tail(&log_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("chromium loaded {url} in {:?}", started.elapsed());
    let dom = std::fs::read_to_string(&dom_path).unwrap_or_default();
    let results = dom
        .split_once(r#"<pre id="results">"#)
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(text, _)| unescape(text))
        .unwrap_or_default();
    let lines: Vec<&str> = results.lines().collect();
    assert!(
        status.success() && lines.last() == Some(&"DONE"),
        "{url}: the page did not finish (chromium {status}); results: {results:?}; \
         its log ends:\n{}",
        tail(&log_path)
    );
    lines[..lines.len() - 1]
        .iter()
        .map(|line| {
            parse_outcome(line).unwrap_or_else(|| panic!("{url}: unreadable line {line:?}"))
        })
        .collect()
}

/// Undoes the escaping of text nodes in serialized HTML.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The API answer with `Origin: origin`, without a browser.
async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/users/me"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .expect("preflight")
}

fn allow_origin(response: &reqwest::Response) -> Option<String> {
    header(response, "access-control-allow-origin")
}

#[actix_web::test]
async fn page_on_an_allowed_origin_reads_and_renames_its_user_with_fetch() {
    if !chromium_available("page_on_an_allowed_origin_reads_and_renames_its_user_with_fetch") {
        return;
    }
    let host = PageHost::start();
    let app = TestApp::spawn_with(
        Options::new(Backend::Sqlite).env("CORS_ALLOWED_ORIGINS", &host.origin()),
    )
    .await;
    let token = app.token("auth0|browser-ada", &[]);
    // The PATCH is preflighted twice over: Authorization and a JSON Content-Type.
    host.serve(&page(
        &app.address,
        &token,
        &[
            bearer("GET", "/users/me", None),
            bearer("PATCH", "/users/me", Some(json!({"name": "Ada Lovelace"}))),
        ],
    ));

    let outcomes = visit(format!("{}/", host.origin())).await;

    let [get, patch] = outcomes.as_slice() else {
        panic!("expected two outcomes, got {outcomes:?}");
    };
    let Outcome::Answered {
        status: 200,
        request_id,
        body,
    } = get
    else {
        panic!("GET /users/me from the allowed origin: {get:?}");
    };
    assert_eq!(body["sub"], "auth0|browser-ada", "GET: {body}");
    assert_ne!(
        request_id, "-",
        "GET: X-Request-Id is not exposed to scripts"
    );
    let Outcome::Answered {
        status: 200, body, ..
    } = patch
    else {
        panic!("PATCH /users/me from the allowed origin: {patch:?}");
    };
    assert_eq!(body["sub"], "auth0|browser-ada", "PATCH: {body}");
    assert_eq!(body["name"], "Ada Lovelace", "PATCH: {body}");

    let stored: Value = app.get_me(&token).await.json().await.expect("user json");
    assert_eq!(
        stored["name"], "Ada Lovelace",
        "the PATCH was stored: {stored}"
    );
}

#[actix_web::test]
async fn page_on_an_unlisted_origin_is_blocked_by_the_browser_not_the_api() {
    if !chromium_available("page_on_an_unlisted_origin_is_blocked_by_the_browser_not_the_api") {
        return;
    }
    let (allowed, other) = (PageHost::start(), PageHost::start());
    let app = TestApp::spawn_with(
        Options::new(Backend::Sqlite).env("CORS_ALLOWED_ORIGINS", &allowed.origin()),
    )
    .await;
    let sub = "auth0|browser-mallory";
    let token = app.token(sub, &[]);
    let html = page(
        &app.address,
        &token,
        &[reachability("/healthz"), bearer("GET", "/users/me", None)],
    );
    allowed.serve(&html);
    other.serve(&html);
    // The same page from another port, and from the allowed port under
    // another host name: origins match exactly, so both are foreign.
    let cases = [
        ("another port", format!("{}/", other.origin())),
        (
            "localhost instead of 127.0.0.1",
            format!("http://localhost:{}/", allowed.port),
        ),
    ];
    let runs = futures::future::join_all(cases.iter().map(|(_, url)| visit(url.clone()))).await;

    for ((case, url), outcomes) in cases.iter().zip(runs) {
        match outcomes.as_slice() {
            [Outcome::Opaque, Outcome::Blocked(name)] => {
                assert_eq!(name, "TypeError", "{case} ({url})");
            }
            other => panic!(
                "{case} ({url}): expected the API reachable and the call blocked, got {other:?}"
            ),
        }
    }

    // The blocked preflight kept the GET from being sent: no user was created.
    let admin = app.token("auth0|admin", &["read:users"]);
    let page: Value = app
        .get(
            &format!("/users?search={}", sub.replace('|', "%7C")),
            &admin,
        )
        .await
        .json()
        .await
        .expect("list json");
    assert_eq!(page["count"], 0, "the browser sent the GET anyway: {page}");

    // usergate answers every origin; only the listed one gets the header the
    // browser needs before it hands the answer to the script.
    let foreign = other.origin();
    let r = preflight(&app, &foreign).await;
    assert_eq!(allow_origin(&r), None, "preflight from {foreign}");
    let r = preflight(&app, &allowed.origin()).await;
    assert_eq!(r.status(), 200, "preflight from the allowed origin");
    assert_eq!(allow_origin(&r), Some(allowed.origin()));
    let r = app
        .client
        .get(app.url("/users/me"))
        .header("Origin", &foreign)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "the API itself serves {foreign}");
    assert_eq!(allow_origin(&r), None, "GET from {foreign}");
    let user: Value = r.json().await.expect("user json");
    assert_eq!(user["sub"], sub);
}
