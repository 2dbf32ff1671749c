//! The process's log: env_logger's text by default, or one JSON object per
//! line (`LOG_FORMAT=json`) that a log pipeline can aggregate across replicas.

use std::io::Write;

use log::kv::{self, VisitSource};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// env_logger's text lines.
    Text,
    /// One JSON object per line: time, level, target, message and any fields.
    Json,
}

impl LogFormat {
    /// Parses `LOG_FORMAT` (`text` or `json`; unset is text).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(format!("must be text or json (got {other:?})")),
        }
    }
}

/// Starts the logger with `RUST_LOG` (default `info`) in `format`.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|out, record| {
            let mut line = serde_json::Map::new();
            line.insert(
                "time".into(),
                chrono::Utc::now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .into(),
            );
            line.insert("level".into(), record.level().as_str().into());
            line.insert("target".into(), record.target().into());
            line.insert("message".into(), record.args().to_string().into());
            let _ = record.key_values().visit(&mut Fields(&mut line));
            writeln!(out, "{}", serde_json::Value::Object(line))
        });
    }
    builder.init();
}

/// Copies a record's key-values into the JSON line.
struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(f) = value.to_f64() {
            serde_json::Number::from_f64((f * 1000.0).round() / 1000.0)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        } else {
            let text = value.to_string();
            if text.is_empty() {
                // An absent field (e.g. no trace id) is left out.
                return Ok(());
            }
            text.into()
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}
