//! Alert endpoint targets as the fabric file names them (`webhook:URL`, `email:TO?via=…`),
//! parsed and checked when the file is loaded; `alert` sends to them.

/// The relay used when an `email:` endpoint names none.
pub const DEFAULT_RELAY: &str = "127.0.0.1:25";
/// Most recipients one endpoint may list.
pub const RECIPIENTS_MAX: usize = 16;

/// `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
    /// `https://`: TLS, server verified.
    pub tls: bool,
}

impl HttpUrl {
    pub fn parse(url: &str) -> std::result::Result<HttpUrl, String> {
        let (rest, tls) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => {
                return Err(format!(
                    "\"{url}\": webhooks must be http:// or https:// URLs"
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        // `[v6]:port` and `[v6]` keep their brackets until the port is split off.
        let split = if authority.starts_with('[') {
            authority
                .rsplit_once("]:")
                .map(|(h, p)| (&authority[..h.len() + 1], p))
        } else {
            authority.rsplit_once(':')
        };
        let (host, port) = match split {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("\"{url}\": bad port \"{p}\""))?;
                (h, port)
            }
            None => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '@') {
            return Err(format!("\"{url}\": bad host \"{host}\""));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("\"{url}\": the path must not contain spaces"));
        }
        Ok(HttpUrl {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path: path.to_owned(),
            tls,
        })
    }
}

/// A checked `email:` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailTarget {
    pub to: Vec<String>,
    pub relay: String,
}

impl EmailTarget {
    /// Parses what follows `email:`.
    pub fn parse(spec: &str) -> std::result::Result<EmailTarget, String> {
        let (to, relay) = match spec.split_once("?via=") {
            Some((to, relay)) => (to, relay.to_string()),
            None => (spec, DEFAULT_RELAY.to_string()),
        };
        let to: Vec<String> = to.split(',').map(|s| s.trim().to_string()).collect();
        let bad = to.iter().find(|a| !plausible_address(a));
        if let Some(a) = bad {
            return Err(format!(
                "`email:` recipient \"{a}\" is not an address like ops@example.com"
            ));
        }
        if to.len() > RECIPIENTS_MAX {
            return Err(format!(
                "`email:` lists {} recipients (at most {RECIPIENTS_MAX})",
                to.len()
            ));
        }
        if relay
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(format!("`email:` relay \"{relay}\" is not HOST:PORT"));
        }
        Ok(EmailTarget { to, relay })
    }
}

/// One `@`, something on both sides, nothing that could break an SMTP command line.
fn plausible_address(a: &str) -> bool {
    let ok_chars = a
        .chars()
        .all(|c| c.is_ascii_graphic() && !"<>,;\"".contains(c));
    matches!(a.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@'))
        && ok_chars
}
