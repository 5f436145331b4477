//! Outbound HTTP policy, decided before any connection is made: a request may go only to an
//! origin (scheme, host, port) the manifest allows, and only to addresses that are public, or
//! that an allowlist entry names literally. The check runs on the *resolved* addresses and the
//! caller connects to the address that was checked, so a name that resolves (or re-resolves)
//! to loopback, link-local (cloud metadata at 169.254.169.254) or a private range is refused.
//!

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One allowed origin, from a manifest entry such as `"https://api.example.com"` or
/// `"http://127.0.0.1:8080"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    pub scheme: Scheme,
    /// Lower-cased host name, or an IP literal.
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Why a request is refused; the message names what to grant, never request contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    BadUrl(String),
    #[error("{origin} is not in the plugin's [http] allow list")]
    NotAllowed { origin: String },
    #[error(
        "{origin} resolves to {addr}, a {class} address; only an allow entry naming that \
         address literally permits it"
    )]
    SpecialAddress {
        origin: String,
        addr: IpAddr,
        class: &'static str,
    },
    #[error("{origin} did not resolve to any address")]
    Unresolved { origin: String },
}

/// Parses an allowlist entry: `scheme://host[:port]`, nothing else (no path, no user info).
pub fn parse_origin(entry: &str) -> Result<AllowedOrigin, String> {
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or_else(|| format!("{entry:?} must look like https://host[:port]"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("{entry:?}: scheme {other:?} is not http or https")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "{entry:?} must be an origin only (scheme://host[:port]), without path or user info"
        ));
    }
    let (host, port) = split_host_port(rest).map_err(|e| format!("{entry:?}: {e}"))?;
    Ok(AllowedOrigin {
        scheme,
        host,
        port: port.unwrap_or(scheme.default_port()),
    })
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unterminated IPv6 literal")?;
        let port = after.strip_prefix(':');
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| format!("bad port {p:?}")))
        .transpose()?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// The special-purpose class of an address, or None for an ordinary public address.
pub fn special_class(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address in IPv6 clothing gets the IPv4 rules.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_class(v4);
            }
            v6_class(v6)
        }
    }
}

fn v4_class(a: Ipv4Addr) -> Option<&'static str> {
    let [o1, o2, ..] = a.octets();
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if a.is_private() {
        Some("private")
    } else if a.is_unspecified() || o1 == 0 {
        Some("unspecified")
    } else if o1 == 100 && (64..128).contains(&o2) {
        Some("shared (carrier-grade NAT)")
    } else if a.is_broadcast() || a.is_multicast() || o1 >= 240 {
        Some("broadcast, multicast or reserved")
    } else if a.is_documentation() || (o1 == 198 && (18..20).contains(&o2)) {
        Some("documentation or benchmarking")
    } else {
        None
    }
}

fn v6_class(a: Ipv6Addr) -> Option<&'static str> {
    let first = a.segments()[0];
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_unspecified() {
        Some("unspecified")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("unique local (private)")
    } else if a.is_multicast() {
        Some("multicast")
    } else if a.to_ipv4().is_some() && first == 0 {
        // IPv4-compatible (deprecated) addresses: judge by the embedded IPv4 address.
        a.to_ipv4().and_then(v4_class).or(Some("IPv4-compatible"))
    } else if first == 0x2001 && a.segments()[1] == 0x0db8 {
        Some("documentation")
    } else {
        None
    }
}

fn origin_text(scheme: Scheme, host: &str, port: u16) -> String {
    let scheme = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    format!("{scheme}://{host}:{port}")
}

/// The allowlist entry for `scheme://host:port`: checked before any DNS lookup, so a request
/// to an origin that is not allowed costs nothing and reveals nothing.
pub fn allowed<'a>(
    allow: &'a [AllowedOrigin],
    scheme: Scheme,
    host: &str,
    port: u16,
) -> Result<&'a AllowedOrigin, Denied> {
    let host = host.to_ascii_lowercase();
    allow
        .iter()
        .find(|o| o.scheme == scheme && o.host == host && o.port == port)
        .ok_or_else(|| Denied::NotAllowed {
            origin: origin_text(scheme, &host, port),
        })
}

/// Decides a request to `scheme://host:port` whose host resolved to `resolved`: returns the
/// address to connect to (one that passed the check) or why the request is refused.
pub fn check(
    allow: &[AllowedOrigin],
    scheme: Scheme,
    host: &str,
    port: u16,
    resolved: &[IpAddr],
) -> Result<SocketAddr, Denied> {
    let entry = allowed(allow, scheme, host, port)?;
    let origin = origin_text(scheme, &entry.host, port);
    let literal: Option<IpAddr> = entry.host.parse().ok();
    let mut first_refusal = None;
    for &addr in resolved {
        match special_class(addr) {
            // Special addresses only when the grant names exactly this address.
            Some(class) if literal != Some(addr) => {
                first_refusal.get_or_insert(Denied::SpecialAddress {
                    origin: origin.clone(),
                    addr,
                    class,
                });
            }
            _ => return Ok(SocketAddr::new(addr, port)),
        }
    }
    Err(first_refusal.unwrap_or(Denied::Unresolved { origin }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> Vec<AllowedOrigin> {
        entries.iter().map(|e| parse_origin(e).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn origins_parse_with_default_ports_and_reject_paths() {
        let o = parse_origin("https://API.example.com").unwrap();
        assert_eq!(
            (o.scheme, o.host.as_str(), o.port),
            (Scheme::Https, "api.example.com", 443)
        );
        assert_eq!(parse_origin("http://[::1]:8080").unwrap().port, 8080);
        for bad in [
            "api.example.com",
            "ftp://x",
            "https://x/path",
            "https://u@x",
            "https://x:99999",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_address_of_an_allowed_origin_passes() {
        let a = allow(&["https://api.example.com"]);
        let to = check(
            &a,
            Scheme::Https,
            "api.example.com",
            443,
            &[ip("93.184.216.34")],
        )
        .unwrap();
        assert_eq!(to, "93.184.216.34:443".parse().unwrap());
    }

    #[test]
    fn other_hosts_ports_and_schemes_are_refused() {
        let a = allow(&["https://api.example.com"]);
        let public = [ip("93.184.216.34")];
        for (scheme, host, port) in [
            (Scheme::Https, "evil.example.com", 443),
            (Scheme::Https, "api.example.com", 8443),
            (Scheme::Http, "api.example.com", 443),
        ] {
            assert!(matches!(
                check(&a, scheme, host, port, &public),
                Err(Denied::NotAllowed { .. })
            ));
        }
    }

    #[test]
    fn allowed_names_resolving_to_special_addresses_are_refused() {
        let a = allow(&["https://api.example.com"]);
        for addr in [
            "127.0.0.1",
            "169.254.169.254",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let err = check(&a, Scheme::Https, "api.example.com", 443, &[ip(addr)]).unwrap_err();
            assert!(
                matches!(err, Denied::SpecialAddress { .. }),
                "{addr}: {err}"
            );
        }
    }

    #[test]
    fn a_literal_grant_permits_exactly_that_special_address() {
        let a = allow(&["http://127.0.0.1:8080"]);
        assert!(check(&a, Scheme::Http, "127.0.0.1", 8080, &[ip("127.0.0.1")]).is_ok());
        // A name is not the literal, even when it resolves to it.
        let named = allow(&["http://localhost:8080"]);
        let err = check(&named, Scheme::Http, "localhost", 8080, &[ip("127.0.0.1")]).unwrap_err();
        assert!(matches!(err, Denied::SpecialAddress { .. }), "{err}");
    }

    #[test]
    fn mixed_resolution_connects_only_to_a_checked_public_address() {
        let a = allow(&["https://api.example.com"]);
        let to = check(
            &a,
            Scheme::Https,
            "api.example.com",
            443,
            &[ip("10.0.0.7"), ip("93.184.216.34")],
        )
        .unwrap();
        assert_eq!(to.ip(), ip("93.184.216.34"));
    }
}
