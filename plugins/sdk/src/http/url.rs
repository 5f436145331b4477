//! Just enough URL parsing for `wasi:http`, which wants scheme, authority and path apart.

/// An `http://` or `https://` URL split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url<'a> {
    pub https: bool,
    /// `host[:port]`, as written (IPv6 literals keep their brackets).
    pub authority: &'a str,
    /// Always starts with `/`; the fragment is dropped.
    pub path_with_query: String,
}

impl Url<'_> {
    /// The URL without its query string, for logs and messages: queries often carry tokens
    /// (signed URLs, API keys) that must not end up in the worker's logs or workflow history.
    pub fn without_query(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let path = self.path_with_query.split('?').next().unwrap_or("/");
        format!("{scheme}://{}{path}", self.authority)
    }
}

/// Parses `url`. The error says what is wrong with it, for a person.
pub fn parse(url: &str) -> Result<Url<'_>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected scheme://authority/path")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        other => return Err(format!("unsupported scheme {other:?} (http or https)")),
    };
    // The fragment never goes on the wire.
    let rest = rest.split('#').next().unwrap_or_default();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err("missing host".into());
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    if authority
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
        || path.contains(' ')
    {
        return Err("whitespace in the URL".into());
    }
    let path_with_query = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(Url {
        https,
        authority,
        path_with_query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (bool, &str, String) {
        let u = parse(url).unwrap();
        (u.https, u.authority, u.path_with_query)
    }

    #[test]
    fn splits_scheme_authority_and_path() {
        assert_eq!(
            ok("http://127.0.0.1:8080/a/b?x=1#frag"),
            (false, "127.0.0.1:8080", "/a/b?x=1".into())
        );
        assert_eq!(ok("HTTPS://example.com"), (true, "example.com", "/".into()));
        assert_eq!(ok("http://h?q"), (false, "h", "/?q".into()));
        assert_eq!(ok("http://[::1]:80/"), (false, "[::1]:80", "/".into()));
    }

    #[test]
    fn the_query_stays_out_of_the_display_form() {
        let u = parse("HTTPS://h:8443/a/b.csv?sig=secret#x").unwrap();
        assert_eq!(u.without_query(), "https://h:8443/a/b.csv");
        assert_eq!(parse("http://h?k=v").unwrap().without_query(), "http://h/");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "127.0.0.1/x",
            "ftp://h/",
            "http:///path",
            "http://u:p@h/",
            "http://h /",
            "http://h/a b",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
