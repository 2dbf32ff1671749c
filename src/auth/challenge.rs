//! The one builder of `WWW-Authenticate` values (RFC 6750 §3, RFC 9449 §7.1,
//! RFC 9728 §5.1).

/// The realm named in every challenge that has one.
pub const REALM: &str = "usergate";

/// Builds `Scheme k="v", …` with RFC 7230 quoted-string escaping and the
/// parameters comma-separated, as RFC 7235 requires; several challenges are
/// joined into one header value with [`Challenge::and`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    text: String,
    /// Whether the last challenge has a parameter yet.
    has_params: bool,
}

impl Challenge {
    fn scheme(name: &str) -> Self {
        Self {
            text: name.to_owned(),
            has_params: false,
        }
    }

    /// `Bearer realm="usergate"`.
    pub fn bearer() -> Self {
        Self::bare_bearer().param("realm", REALM)
    }

    /// `Bearer` without a realm: the insufficient-scope challenge starts with
    /// its error, as DESIGN.md writes it.
    pub fn bare_bearer() -> Self {
        Self::scheme("Bearer")
    }

    /// `DPoP` without parameters (add `error` first, then `algs`).
    pub fn bare_dpop() -> Self {
        Self::scheme("DPoP")
    }

    /// `DPoP algs="…"`: the proof algorithms accepted.
    pub fn dpop(algs: &str) -> Self {
        Self::bare_dpop().param("algs", algs)
    }

    /// Adds `name="value"`; characters outside visible ASCII are dropped.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.text.push_str(if self.has_params { ", " } else { " " });
        self.has_params = true;
        self.text.push_str(name);
        self.text.push_str("=\"");
        for ch in value.chars() {
            match ch {
                '"' | '\\' => {
                    self.text.push('\\');
                    self.text.push(ch);
                }
                ' '..='~' => self.text.push(ch),
                _ => {}
            }
        }
        self.text.push('"');
        self
    }

    /// Points the client at the RFC 9728 metadata under `base_url`.
    pub fn resource_metadata(self, base_url: &str) -> Self {
        self.param(
            "resource_metadata",
            &format!("{base_url}/.well-known/oauth-protected-resource"),
        )
    }

    /// This challenge, then `other`, in one header value (RFC 7235 §4.1).
    pub fn and(mut self, other: Challenge) -> Self {
        self.text.push_str(", ");
        self.text.push_str(&other.text);
        self.has_params = other.has_params;
        self
    }

    /// The header value.
    pub fn finish(self) -> String {
        self.text
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

    #[test]
    fn two_challenges_share_one_value() {
        assert_eq!(
            Challenge::bearer().and(Challenge::dpop("ES256")).finish(),
            r#"Bearer realm="usergate", DPoP algs="ES256""#
        );
        assert_eq!(
            Challenge::bare_dpop()
                .param("error", "invalid_dpop_proof")
                .and(Challenge::bearer())
                .finish(),
            r#"DPoP error="invalid_dpop_proof", Bearer realm="usergate""#
        );
    }
}
