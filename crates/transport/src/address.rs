//! Bound URLs and the URLs peers connect to.
//!
//! A daemon may bind every interface (`tcp://0.0.0.0:PORT`, `tcp://*:PORT`,
//! `tcp://[::]:PORT`); a peer on the same host cannot connect to that
//! address, so it connects to the loopback address instead.

/// The host of a `tcp://HOST:PORT` URL; `None` for other transports.
fn tcp_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("tcp://")?;
    Some(match rest.rfind(':') {
        Some(colon) => &rest[..colon],
        None => rest,
    })
}

/// True if a `tcp://` URL binds every interface (`0.0.0.0`, `*`, `[::]`).
pub fn binds_every_interface(url: &str) -> bool {
    matches!(tcp_host(url), Some("0.0.0.0" | "*" | "[::]" | "::"))
}

/// A URL to connect to on this host for one that was bound: a wildcard
/// address (`0.0.0.0`, `*`, `[::]`) becomes the loopback address of its
/// family; any other URL is returned as it is.
pub fn connectable_url(url: &str) -> String {
    let loopback = match tcp_host(url) {
        Some("0.0.0.0" | "*") => "127.0.0.1",
        Some("[::]") => "[::1]",
        _ => return url.to_owned(),
    };
    match url.rfind(':') {
        Some(colon) => format!("tcp://{loopback}{}", &url[colon..]),
        None => format!("tcp://{loopback}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_loopback() {
        assert_eq!(
            connectable_url("tcp://0.0.0.0:4100"),
            "tcp://127.0.0.1:4100"
        );
        assert_eq!(connectable_url("tcp://[::]:4100"), "tcp://[::1]:4100");
        assert_eq!(connectable_url("tcp://*:4100"), "tcp://127.0.0.1:4100");
        assert_eq!(
            connectable_url("tcp://10.0.0.5:4100"),
            "tcp://10.0.0.5:4100"
        );
        assert_eq!(connectable_url("ipc:///tmp/x"), "ipc:///tmp/x");
    }

    #[test]
    fn wildcard_binds_are_recognised() {
        for url in ["tcp://0.0.0.0:1", "tcp://*:1", "tcp://[::]:1"] {
            assert!(binds_every_interface(url), "{url}");
        }
        for url in ["tcp://127.0.0.1:1", "tcp://host:1", "ipc:///tmp/x"] {
            assert!(!binds_every_interface(url), "{url}");
        }
    }
}
