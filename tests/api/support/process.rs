//! The real binary as a process: a clean command line, output collected as
//! it comes, free ports, and the environment of `serve`.

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{AUDIENCE, issuer::TestIssuer};

/// The built binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_usergate"))
}

/// A port nobody listens on right now (bound, then released for the child).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports: all are held at once, so none is picked twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [TcpListener; N] =
        std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").expect("free port"));
    listeners.map(|l| l.local_addr().expect("local address").port())
}

/// The binary with `args`, a clean environment (PATH and `env` only) and a
/// working directory without any `.env`.
pub fn command(args: &[&str], env: &[(&str, String)], cwd: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A child process whose output is collected as it comes; killed on drop.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("output buffer")
                .extend_from_slice(&buf[..n]);
        }
    })
}

impl Running {
    /// Starts `command`.
    pub fn start(mut command: Command) -> Self {
        let mut child = command.spawn().expect("start the usergate binary");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), Arc::clone(&stdout)),
            collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr)),
        ];
        Self {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Standard output so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("stdout")).into_owned()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr")).into_owned()
    }

    /// Sends SIGTERM to this child (by its pid).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the exit without blocking the test's runtime (which may be
    /// serving the issuer); panics with the output after `within`.
    pub async fn exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {within:?}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `GET {base}/readyz` until 200 (at most 30 s).
    pub async fn wait_ready(&mut self, base: &str) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("exited early with {status}\nstderr:\n{}", self.stderr());
            }
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{base} did not become ready\nstderr:\n{}", self.stderr());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a short command to its end (at most 60 s): status, stdout, stderr.
pub async fn run(command: Command) -> (ExitStatus, String, String) {
    let mut running = Running::start(command);
    let status = running.exit(Duration::from_secs(60)).await;
    (status, running.stdout(), running.stderr())
}

/// The environment of `serve` against `issuer` on `port`.
pub fn serve_env(
    issuer: &TestIssuer,
    database_url: &str,
    port: u16,
) -> Vec<(&'static str, String)> {
    vec![
        ("AUTH0_ISSUER", issuer.issuer.clone()),
        ("AUTH0_AUDIENCE", AUDIENCE.into()),
        ("DATABASE_URL", database_url.into()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", port.to_string()),
        ("SHUTDOWN_DRAIN_SECS", "0".into()),
    ]
}

/// Sets `name` in `env`, replacing any value it had.
pub fn set_env(env: &mut Vec<(&'static str, String)>, name: &'static str, value: &str) {
    env.retain(|(n, _)| *n != name);
    env.push((name, value.into()));
}
