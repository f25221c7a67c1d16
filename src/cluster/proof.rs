//! How one replica proves to another that a request comes from a peer.
//!
//! A forwarded socket or a cluster-wide listing reaches the owner replica
//! without the user's credentials: the replica that received it already
//! checked them, along with Host, Origin and the limits. The owner must be
//! sure of that, or the forwarding path would be a way around all of them.
//! So every peer request carries `X-Webterm-Peer: NODE TO TIME NONCE MAC`,
//! an HMAC under the cluster secret (`--secret-file`) over who sends it, to
//! which replica, when, a random nonce, the method and target, and the
//! client it speaks for. A proof is good for `MAX_SKEW` either side of the
//! owner's clock (long enough for clocks that NTP keeps close), at the
//! replica it names, once: each replica remembers the nonces it has taken
//! (`Replays`). So a header captured on the replicas' network cannot open a
//! second session as the same user, here or on another replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::Secret;

/// The header that carries the proof.
pub const HEADER: &str = "X-Webterm-Peer";
/// Whom the forwarding replica authenticated ("user alice", "address
/// 10.0.0.7"): the owner counts the per-client limit against it.
pub const CLIENT_HEADER: &str = "X-Webterm-Client";
/// The browser's address as the forwarding replica saw it, for logs.
pub const REMOTE_HEADER: &str = "X-Webterm-Remote";

const LABEL: &str = "peer-request-v2";
const MAX_SKEW: Duration = Duration::from_secs(60);
/// Hex digits of a proof's nonce (128 bits).
const NONCE_HEX: usize = 32;
/// Nonces remembered at most. Only holders of the secret can add one, and
/// each is forgotten once its proof has expired; a cluster that makes more
/// peer requests than this in two minutes is refused rather than let
/// memory grow.
const MAX_REMEMBERED: usize = 100_000;
/// Expired nonces are swept out when the memory reaches twice what the
/// last sweep left, and not below this: the sweeps cost a constant per
/// request, and an idle cluster's discovery keeps about this many.
const SWEEP_FROM: usize = 1024;

/// The addressee of a proof that any replica may take: only discovery's
/// "who are you", asked before the asker knows the answer.
pub const ANY: &str = "*";

/// What a proof covers, besides its sender and addressee.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, exactly as sent.
    pub target: &'a str,
    pub client: &'a str,
    pub remote: &'a str,
}

/// The header value for a request from `node` to the replica named `to`.
pub fn sign(secret: &Secret, node: &str, to: &str, req: &Request) -> Option<String> {
    let now = unix_now();
    let nonce = crate::random::hex(NONCE_HEX / 2);
    let mac = secret.tag(LABEL, &parts(node, to, &now.to_string(), &nonce, req))?;
    Some(format!("{node} {to} {now} {nonce} {}", hex(&mac)))
}

/// Who sent a proven request, and to whom.
#[derive(Debug, PartialEq, Eq)]
pub struct Proven {
    pub from: String,
    pub to: String,
}

/// The nonces of the proofs this replica has taken, until they expire.
#[derive(Default)]
pub struct Replays(Mutex<Remembered>);

#[derive(Default)]
struct Remembered {
    /// Nonce -> the time its proof was made.
    seen: HashMap<String, u64>,
    /// The size at which to sweep out expired nonces next.
    sweep_at: usize,
}

impl Replays {
    /// Whether `nonce` is new; if so, it is remembered.
    fn first_use(&self, nonce: &str, sent: u64, now: u64) -> Result<(), &'static str> {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if r.seen.len() >= r.sweep_at.clamp(SWEEP_FROM, MAX_REMEMBERED) {
            // A proof made at `t` is good until `t + MAX_SKEW`.
            r.seen.retain(|_, &mut t| t + MAX_SKEW.as_secs() >= now);
            r.sweep_at = r.seen.len() * 2;
        }
        if r.seen.len() >= MAX_REMEMBERED {
            return Err("too many peer requests to tell replays apart; try again in a minute");
        }
        match r.seen.insert(nonce.to_string(), sent) {
            None => Ok(()),
            Some(_) => Err("peer proof replayed (each is good for one request)"),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().seen.len()
    }
}

/// Sender and addressee, if `header` proves the request and was not used
/// before. Whether the addressee is this replica is the caller's to check.
pub fn verify(
    secret: &Secret,
    replays: &Replays,
    header: &str,
    req: &Request,
) -> Result<Proven, &'static str> {
    let mut fields = header.split(' ');
    let (Some(node), Some(to), Some(time), Some(nonce), Some(mac), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err("malformed peer proof (from a replica of another version?)");
    };
    let sent: u64 = time.parse().map_err(|_| "malformed peer proof")?;
    let now = unix_now();
    if sent.abs_diff(now) > MAX_SKEW.as_secs() {
        return Err("peer proof expired (or the clocks disagree by more than a minute)");
    }
    if nonce.len() != NONCE_HEX || unhex(nonce).is_none() {
        return Err("malformed peer proof");
    }
    let mac = unhex(mac).ok_or("malformed peer proof")?;
    if !secret.verify(LABEL, &parts(node, to, time, nonce, req), &mac) {
        return Err("peer proof does not match (a different --secret-file?)");
    }
    replays.first_use(nonce, sent, now)?;
    Ok(Proven {
        from: node.to_string(),
        to: to.to_string(),
    })
}

fn parts<'a>(
    node: &'a str,
    to: &'a str,
    time: &'a str,
    nonce: &'a str,
    req: &'a Request,
) -> [&'a [u8]; 8] {
    [
        node.as_bytes(),
        to.as_bytes(),
        time.as_bytes(),
        nonce.as_bytes(),
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

    /// Verifies with a fresh memory of nonces: each check on its own.
    fn verify_once(s: &Secret, header: &str, req: &Request) -> Result<String, &'static str> {
        verify(s, &Replays::default(), header, req).map(|p| p.from)
    }

    #[test]
    fn a_proof_holds_for_exactly_what_it_signed() {
        let s = secret(b'a');
        let h = sign(&s, "pod-a", "pod-b", &REQ).unwrap();
        let proven = verify(&s, &Replays::default(), &h, &REQ).unwrap();
        assert_eq!(
            proven,
            Proven {
                from: "pod-a".into(),
                to: "pod-b".into()
            }
        );
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
            assert!(verify_once(&s, &h, &changed).is_err());
        }
        assert!(verify_once(&secret(b'b'), &h, &REQ).is_err());
        // Sender, addressee and nonce are signed too.
        let f: Vec<&str> = h.split(' ').collect();
        let zeros = "0".repeat(NONCE_HEX);
        for forged in [
            format!("pod-c {} {} {} {}", f[1], f[2], f[3], f[4]),
            format!("{} pod-c {} {} {}", f[0], f[2], f[3], f[4]),
            format!("{} {} {} {zeros} {}", f[0], f[1], f[2], f[4]),
        ] {
            assert!(verify_once(&s, &forged, &REQ).is_err(), "{forged}");
        }
    }

    #[test]
    fn a_proof_is_good_once_and_each_request_gets_its_own() {
        let s = secret(b'a');
        let replays = Replays::default();
        let first = sign(&s, "pod-a", "pod-b", &REQ).unwrap();
        let second = sign(&s, "pod-a", "pod-b", &REQ).unwrap();
        assert_ne!(first, second, "the same request twice must get two proofs");
        assert!(verify(&s, &replays, &first, &REQ).is_ok());
        let again = verify(&s, &replays, &first, &REQ).unwrap_err();
        assert!(again.contains("replayed"), "{again}");
        assert!(verify(&s, &replays, &second, &REQ).is_ok());
        // A proof refused for another reason is not remembered.
        let third = sign(&s, "pod-a", "pod-b", &REQ).unwrap();
        let wrong = Request {
            method: "DELETE",
            ..REQ
        };
        assert!(verify(&s, &replays, &third, &wrong).is_err());
        assert!(verify(&s, &replays, &third, &REQ).is_ok());
    }

    #[test]
    fn remembered_nonces_are_forgotten_once_expired_and_bounded_meanwhile() {
        let replays = Replays::default();
        let now = 1_000_000;
        // Expired ones are swept out as more come: they never pile up.
        for i in 0..MAX_REMEMBERED {
            replays
                .first_use(&format!("old {i}"), now - 61, now)
                .unwrap();
            assert!(replays.len() <= SWEEP_FROM, "{} kept", replays.len());
        }
        // Live ones are kept, up to the bound; then requests are refused,
        // and memory does not grow.
        for i in 0..MAX_REMEMBERED {
            replays.first_use(&format!("{i}"), now, now).unwrap();
        }
        assert!(replays.first_use("one more", now, now).is_err());
        assert_eq!(replays.len(), MAX_REMEMBERED);
        // Once they expire, there is room again.
        replays.first_use("later", now + 61, now + 61).unwrap();
        assert_eq!(replays.len(), 1);
    }

    #[test]
    fn stale_and_malformed_proofs_are_refused() {
        let s = secret(b'a');
        let old = unix_now() - 3600;
        let nonce = "0123456789abcdef0123456789abcdef";
        let mac = s
            .tag(
                LABEL,
                &parts("pod-a", "pod-b", &old.to_string(), nonce, &REQ),
            )
            .unwrap();
        let mac = hex(&mac);
        let stale = format!("pod-a pod-b {old} {nonce} {mac}");
        let why = verify_once(&s, &stale, &REQ).unwrap_err();
        assert!(why.contains("expired"), "{why}");
        let now = unix_now();
        for bad in [
            String::new(),
            "pod-a".into(),
            "pod-a pod-b x y z".into(),
            format!("pod-a pod-b {now} {nonce} zz"),
            format!("pod-a pod-b {now} short {mac}"),
            format!("pod-a pod-b {now} {} {mac}", "g".repeat(NONCE_HEX)),
            format!("pod-a {now} {nonce} {mac}"),
            "a b c d e f".into(),
        ] {
            assert!(verify_once(&s, &bad, &REQ).is_err(), "{bad:?}");
        }
    }
}
