//! A `serve --dev` setup shared by the tests of the developer commands: a
//! folder, a port, the environment, and what the dev server prints.

use std::path::PathBuf;

use tempfile::TempDir;

use super::process::{Running, command, free_port, run};

/// A dev setup: a folder, a port, and the environment every command shares.
pub struct Dev {
    /// The working directory of every command.
    pub dir: TempDir,
    /// The port `serve --dev` listens on.
    pub port: u16,
    extra: Vec<(&'static str, String)>,
}

impl Dev {
    /// A fresh folder and port.
    pub fn new() -> Self {
        Self::with_env(&[])
    }

    /// The same, every command also given `extra`.
    pub fn with_env(extra: &[(&'static str, &str)]) -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            extra: extra.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        }
    }

    /// The key lives in a folder the key creation must make private itself.
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("keys").join("dev-key.pem")
    }

    /// The environment every command gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PORT", self.port.to_string()),
            ("DEV_KEY_PATH", self.key_path().display().to_string()),
            (
                "DATABASE_URL",
                format!("sqlite://{}", self.dir.path().join("dev.db").display()),
            ),
            ("SHUTDOWN_DRAIN_SECS", "0".into()),
        ];
        env.extend(self.extra.iter().cloned());
        env
    }

    /// An absolute URL on the dev server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts `serve --dev` and waits until it is ready.
    pub async fn serve(&self) -> Running {
        let mut server = Running::start(command(&["serve", "--dev"], &self.env(), self.dir.path()));
        server.wait_ready(&self.url("")).await;
        server
    }

    /// Runs `mint-token` with `args` and returns the token it prints.
    pub async fn mint(&self, args: &[&str]) -> String {
        let args = [&["mint-token"], args].concat();
        let (status, stdout, stderr) = run(command(&args, &self.env(), self.dir.path())).await;
        assert!(status.success(), "mint-token {args:?}: {status}\n{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "the token alone on stdout: {stdout:?}");
        assert_eq!(lines[0].split('.').count(), 3, "a JWS: {stdout}");
        lines[0].to_owned()
    }
}

/// The token of the `curl -H 'Authorization: Bearer …' URL` line.
pub fn curl_token(stdout: &str, url: &str) -> Option<String> {
    let line = stdout.lines().find(|l| l.starts_with("curl "))?;
    assert!(line.ends_with(&format!(" {url}")), "curl line: {line}");
    let token = line.split("Bearer ").nth(1)?.split('\'').next()?;
    Some(token.to_owned())
}
