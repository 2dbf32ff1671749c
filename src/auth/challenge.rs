//! The one builder of `WWW-Authenticate` values (RFC 6750 §3, RFC 9728 §5.1).

/// The realm named in every challenge that has one.
pub const REALM: &str = "usergate";

/// Builds `Bearer k="v", …` with RFC 7230 quoted-string escaping and the
/// parameters comma-separated, as RFC 7235 requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge(String);

impl Challenge {
    /// `Bearer realm="usergate"`.
    pub fn bearer() -> Self {
        Self::bare_bearer().param("realm", REALM)
    }

    /// `Bearer` without a realm: the insufficient-scope challenge starts with
    /// its error, as DESIGN.md writes it.
    pub fn bare_bearer() -> Self {
        Self(String::from("Bearer"))
    }

    /// Adds `name="value"`; characters outside visible ASCII are dropped.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.0.push_str(if self.0.len() == "Bearer".len() {
            " "
        } else {
            ", "
        });
        self.0.push_str(name);
        self.0.push_str("=\"");
        for ch in value.chars() {
            match ch {
                '"' | '\\' => {
                    self.0.push('\\');
                    self.0.push(ch);
                }
                ' '..='~' => self.0.push(ch),
                _ => {}
            }
        }
        self.0.push('"');
        self
    }

    /// Points the client at the RFC 9728 metadata under `base_url`.
    pub fn resource_metadata(self, base_url: &str) -> Self {
        self.param(
            "resource_metadata",
            &format!("{base_url}/.well-known/oauth-protected-resource"),
        )
    }

    /// The header value.
    pub fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_comma_separated_and_escaped() {
        assert_eq!(Challenge::bearer().finish(), r#"Bearer realm="usergate""#);
        assert_eq!(
            Challenge::bearer()
                .param("x", "a\"b\\c\u{7}é")
                .resource_metadata("http://h:1")
                .finish(),
            r#"Bearer realm="usergate", x="a\"b\\c", resource_metadata="http://h:1/.well-known/oauth-protected-resource""#
        );
        assert_eq!(
            Challenge::bare_bearer().param("error", "e").finish(),
            r#"Bearer error="e""#
        );
    }
}
