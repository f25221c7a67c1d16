//! How one replica proves to another that a request comes from a peer.
//!
//! A forwarded socket or a cluster-wide listing reaches the owner replica
//! without the user's credentials: the replica that received it already
//! checked them, along with Host, Origin and the limits. The owner must be
//! sure of that, or the forwarding path would be a way around all of them.
//! So every peer request carries `X-Webterm-Peer: NODE TIME MAC`, an HMAC
//! under the cluster secret (`--secret-file`) over who sends it, when, the
//! method and target, and the client it speaks for. A proof is good for
//! `MAX_SKEW` either side of the owner's clock: long enough for clocks that
//! NTP keeps close, short enough that a captured header soon expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::Secret;

/// The header that carries the proof.
pub const HEADER: &str = "X-Webterm-Peer";
/// Whom the forwarding replica authenticated ("user alice", "address
/// 10.0.0.7"): the owner counts the per-client limit against it.
pub const CLIENT_HEADER: &str = "X-Webterm-Client";
/// The browser's address as the forwarding replica saw it, for logs.
pub const REMOTE_HEADER: &str = "X-Webterm-Remote";

const LABEL: &str = "peer-request-v1";
const MAX_SKEW: Duration = Duration::from_secs(60);

/// What a proof covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, exactly as sent.
    pub target: &'a str,
    pub client: &'a str,
    pub remote: &'a str,
}

/// The header value for a request from `node`.
pub fn sign(secret: &Secret, node: &str, req: &Request) -> Option<String> {
    let now = unix_now();
    let mac = secret.tag(LABEL, &parts(node, &now.to_string(), req))?;
    Some(format!("{node} {now} {}", hex(&mac)))
}

/// The peer's node name, if `header` proves the request.
pub fn verify(secret: &Secret, header: &str, req: &Request) -> Result<String, &'static str> {
    let mut fields = header.split(' ');
    let (Some(node), Some(time), Some(mac), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("malformed peer proof");
    };
    let sent: u64 = time.parse().map_err(|_| "malformed peer proof")?;
    let now = unix_now();
    if sent.abs_diff(now) > MAX_SKEW.as_secs() {
        return Err("peer proof expired (or the clocks disagree by more than a minute)");
    }
    let mac = unhex(mac).ok_or("malformed peer proof")?;
    if secret.verify(LABEL, &parts(node, time, req), &mac) {
        Ok(node.to_string())
    } else {
        Err("peer proof does not match (a different --secret-file?)")
    }
}

fn parts<'a>(node: &'a str, time: &'a str, req: &'a Request) -> [&'a [u8]; 6] {
    [
        node.as_bytes(),
        time.as_bytes(),
        req.method.as_bytes(),
        req.target.as_bytes(),
        req.client.as_bytes(),
        req.remote.as_bytes(),
    ]
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(fill: u8) -> Secret {
        Secret::from_file_contents(&[fill; 40]).unwrap()
    }

    const REQ: Request = Request {
        method: "GET",
        target: "/ws?resume=ab",
        client: "user alice",
        remote: "10.0.0.7:5000",
    };

    #[test]
    fn a_proof_holds_for_exactly_what_it_signed() {
        let s = secret(b'a');
        let h = sign(&s, "pod-a", &REQ).unwrap();
        assert_eq!(verify(&s, &h, &REQ).unwrap(), "pod-a");
        for changed in [
            Request {
                method: "DELETE",
                ..REQ
            },
            Request {
                target: "/ws?resume=ac",
                ..REQ
            },
            Request {
                client: "user mallory",
                ..REQ
            },
            Request {
                remote: "10.0.0.8:5000",
                ..REQ
            },
        ] {
            assert!(verify(&s, &h, &changed).is_err());
        }
        assert!(verify(&secret(b'b'), &h, &REQ).is_err());
        let renamed = h.replacen("pod-a", "pod-b", 1);
        assert!(verify(&s, &renamed, &REQ).is_err());
    }

    #[test]
    fn stale_and_malformed_proofs_are_refused() {
        let s = secret(b'a');
        let old = unix_now() - 3600;
        let mac = s
            .tag(LABEL, &parts("pod-a", &old.to_string(), &REQ))
            .unwrap();
        let stale = format!("pod-a {old} {}", hex(&mac));
        assert!(verify(&s, &stale, &REQ).unwrap_err().contains("expired"));
        for bad in ["", "pod-a", "pod-a x y", "pod-a 1 zz", "a b c d"] {
            assert!(verify(&s, bad, &REQ).is_err(), "{bad:?}");
        }
    }
}
