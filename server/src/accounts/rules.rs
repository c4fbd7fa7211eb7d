//! The pure rules of accounts: what counts as an email address, where a sign-in may
//! return to, which account a verified identity belongs to, and what an account may
//! do. No I/O here, so each rule is tested on its own.

use serde::Serialize;

/// What an account may do beyond taking a seat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Roles {
    /// Decides who may facilitate.
    pub admin: bool,
    /// May create sessions.
    pub facilitator: bool,
}

impl Roles {
    /// The role names, for `GET /api/me`.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.admin {
            names.push("admin");
        }
        if self.facilitator {
            names.push("facilitator");
        }
        names
    }
}

/// An account's roles: admins from the configuration (by email or provider subject)
/// and from grants; facilitators by grant, and every admin.
pub fn roles(
    email: Option<&str>,
    subjects: &[String],
    configured_admins: &[String],
    granted: &[String],
) -> Roles {
    // An entry with an `@` names a verified email address; any other entry names a
    // provider's subject. A provider's subject never matches an address, so no provider
    // can make someone an admin by choosing a subject that looks like one.
    let named = |entry: &str| {
        if entry.contains('@') {
            email.is_some_and(|email| entry.eq_ignore_ascii_case(email))
        } else {
            subjects.iter().any(|subject| subject == entry)
        }
    };
    let admin =
        configured_admins.iter().any(|entry| named(entry)) || granted.iter().any(|role| role == "admin");
    let facilitator = admin || granted.iter().any(|role| role == "facilitator");
    Roles { admin, facilitator }
}

/// An email address, trimmed and lower-cased, or why it is not one. The check is
/// deliberately plain: one `@`, something either side, a dot in the domain, no spaces
/// or control characters. The mail server is the real judge.
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err("an email address needs an @");
    };
    if email.len() > 254
        || local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
    {
        return Err("that is not an email address");
    }
    Ok(email)
}

/// Where a finished sign-in goes: a path on this server, or `/`. Anything that a
/// browser could read as another site (`//host`, `/\host`, `https://host`) becomes `/`,
/// so that a sign-in link cannot be used to send someone elsewhere.
pub fn safe_return_to(raw: Option<&str>) -> String {
    let Some(raw) = raw.map(str::trim) else {
        return "/".into();
    };
    let local = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/\\")
        && raw.len() <= 512
        && !raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    if local { raw.to_owned() } else { "/".into() }
}

/// Which account a verified identity signs in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChoice {
    /// The account this identity already belongs to.
    Known(String),
    /// The account that holds this (verified) email address, which the identity joins.
    LinkByEmail(String),
    /// A new account.
    New,
}

/// Decides the account for an identity: the one it already belongs to; else, only if
/// the provider vouches for the email address, the account holding that address (an
/// address a co-facilitator was added by, or an earlier email sign-in); else a new one.
/// An unverified address never links, so nobody takes an account by claiming its email.
pub fn choose_account(
    by_identity: Option<String>,
    by_email: Option<String>,
    email_verified: bool,
) -> AccountChoice {
    match (by_identity, by_email) {
        (Some(account), _) => AccountChoice::Known(account),
        (None, Some(account)) if email_verified => AccountChoice::LinkByEmail(account),
        _ => AccountChoice::New,
    }
}

/// A display name for a new account: the provider's name, else the email's local part.
pub fn initial_name(name: Option<&str>, email: Option<&str>, max_chars: usize) -> String {
    let from_email = || email.and_then(|email| email.split('@').next()).unwrap_or("Someone");
    let name = name.map(str::trim).filter(|name| name.chars().any(char::is_alphanumeric));
    name.unwrap_or_else(from_email).chars().take(max_chars).collect()
}

/// The network a client address stands for when counting what it asks for: an IPv4
/// address itself, and an IPv6 address's /64, which one subscriber usually holds whole.
pub fn network_of(client: std::net::IpAddr) -> std::net::IpAddr {
    match client.to_canonical() {
        std::net::IpAddr::V6(v6) => std::net::IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// Who asked, when counting what a client asks for. A request from an address that is
/// not a trusted proxy comes from that address. One from a trusted proxy comes from the
/// right-most address in its `X-Forwarded-For` that is not itself a trusted proxy: each
/// proxy appends the address it was reached from, so what lies further left is the
/// client's own word. `None` when a trusted proxy names no such address: such requests
/// are not counted per client (the proxy is trusted to limit them).
pub fn client_of(
    peer: std::net::IpAddr,
    forwarded_for: &str,
    is_trusted: impl Fn(std::net::IpAddr) -> bool,
) -> Option<std::net::IpAddr> {
    if !is_trusted(peer) {
        return Some(peer.to_canonical());
    }
    for entry in forwarded_for.rsplit(',') {
        let address = forwarded_address(entry.trim())?;
        if !is_trusted(address) {
            return Some(address.to_canonical());
        }
    }
    None
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`[v6]:port`, `v4:port`).
fn forwarded_address(entry: &str) -> Option<std::net::IpAddr> {
    entry
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_address_the_proxy_appended() {
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        let proxies =
            |address: std::net::IpAddr| [ip("127.0.0.1"), ip("10.0.0.2")].contains(&address.to_canonical());
        // Not through a proxy: the peer, whatever it claims.
        assert_eq!(client_of(ip("203.0.113.7"), "198.51.100.1", proxies), Some(ip("203.0.113.7")));
        // Through one: the right-most entry; what the client put further left is ignored.
        assert_eq!(client_of(ip("127.0.0.1"), "198.51.100.1", proxies), Some(ip("198.51.100.1")));
        assert_eq!(
            client_of(ip("127.0.0.1"), "198.51.100.9, 198.51.100.1", proxies),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            client_of(ip("127.0.0.1"), "not an address,198.51.100.1", proxies),
            Some(ip("198.51.100.1"))
        );
        // Through two proxies: past the inner one.
        assert_eq!(
            client_of(ip("127.0.0.1"), "198.51.100.9, 198.51.100.1, 10.0.0.2", proxies),
            Some(ip("198.51.100.1"))
        );
        // Ports and brackets, and a mapped IPv4.
        assert_eq!(client_of(ip("127.0.0.1"), "198.51.100.1:4711", proxies), Some(ip("198.51.100.1")));
        assert_eq!(client_of(ip("127.0.0.1"), "[2001:db8::1]:443", proxies), Some(ip("2001:db8::1")));
        assert_eq!(
            client_of(ip("::ffff:127.0.0.1"), "::ffff:198.51.100.1", proxies),
            Some(ip("198.51.100.1"))
        );
        // A trusted proxy that names no client, or names only garbage: not counted per client.
        assert_eq!(client_of(ip("127.0.0.1"), "", proxies), None);
        assert_eq!(client_of(ip("127.0.0.1"), "unknown", proxies), None);
        assert_eq!(client_of(ip("127.0.0.1"), "10.0.0.2", proxies), None);
    }

    #[test]
    fn a_client_counts_as_its_address_or_its_ipv6_slash_64() {
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(network_of(ip("203.0.113.7")), ip("203.0.113.7"));
        assert_ne!(network_of(ip("203.0.113.7")), network_of(ip("203.0.113.8")));
        assert_eq!(network_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(network_of(ip("2001:db8:1:2:ffff::9")), network_of(ip("2001:db8:1:2::1")));
        assert_ne!(network_of(ip("2001:db8:1:2::1")), network_of(ip("2001:db8:1:3::1")));
        assert_eq!(network_of(ip("::ffff:203.0.113.7")), ip("203.0.113.7"), "a mapped IPv4 is IPv4");
    }

    #[test]
    fn return_to_stays_on_this_server() {
        assert_eq!(safe_return_to(Some("/#session=s-1")), "/#session=s-1");
        assert_eq!(safe_return_to(Some("/#invite=abc")), "/#invite=abc");
        // Browsers drop tabs and newlines before parsing a URL: `/\t/host` is `//host`.
        let hostile = ["//evil.example", "/\\evil.example", "https://evil.example", "evil", "/\\/x", "/a\\b"];
        for hostile in hostile.into_iter().chain(["/\t/evil.example", "/\n/evil.example", "/ /x"]) {
            assert_eq!(safe_return_to(Some(hostile)), "/", "{hostile}");
        }
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(normalize_email(" Ada@Example.ORG ").unwrap(), "ada@example.org");
        for bad in
            ["", "ada", "ada@", "@example.org", "ada@example", "a b@example.org", "a@b@c.org", "a@.org"]
        {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unverified_email_never_links_to_an_account() {
        let known = Some("a-1".to_owned());
        assert_eq!(choose_account(known.clone(), None, false), AccountChoice::Known("a-1".into()));
        assert_eq!(choose_account(None, known.clone(), true), AccountChoice::LinkByEmail("a-1".into()));
        assert_eq!(choose_account(None, known, false), AccountChoice::New);
        assert_eq!(choose_account(None, None, true), AccountChoice::New);
    }

    #[test]
    fn admins_come_from_configuration_or_grants_and_may_facilitate() {
        let admins = vec!["ada@example.org".to_owned(), "subject-7".to_owned()];
        assert_eq!(
            roles(Some("ADA@example.org"), &[], &admins, &[]),
            Roles { admin: true, facilitator: true }
        );
        assert!(roles(None, &["subject-7".into()], &admins, &[]).admin);
        let lookalike = roles(None, &["ada@example.org".into()], &admins, &[]);
        assert!(!lookalike.admin, "a provider's subject that looks like an admin's address is not one");
        assert_eq!(roles(Some("bea@example.org"), &[], &admins, &[]), Roles::default());
        let granted = vec!["facilitator".to_owned()];
        assert_eq!(
            roles(Some("bea@example.org"), &[], &admins, &granted),
            Roles { admin: false, facilitator: true }
        );
        assert_eq!(Roles { admin: true, facilitator: true }.names(), ["admin", "facilitator"]);
    }

    #[test]
    fn names_come_from_the_provider_or_the_address() {
        assert_eq!(initial_name(Some(" Ada "), Some("x@y.org"), 40), "Ada");
        assert_eq!(initial_name(Some("  "), Some("bea@y.org"), 40), "bea");
        assert_eq!(initial_name(None, None, 40), "Someone");
        assert_eq!(initial_name(Some("Abcdef"), None, 3), "Abc");
    }
}
