//! Any replica serves any session.
//!
//! A session lives in one replica: its PTY and processes cannot move. What
//! can move is the socket. Every replica has a name (`--node-id`), and
//! every session id starts with a tag made from its replica's name
//! (`tag_of`), so any replica can tell where a session lives from the id
//! in a reattach or a share link. A socket for a session elsewhere is
//! forwarded to that replica (`relay`), after this replica has checked
//! Host, Origin and the user's credentials; the owner believes it only with
//! a peer proof (`proof`). A new session stays on the replica that served
//! the page: the page names it in `?node=`.
//!
//! Replicas find each other through `--peers`: a DNS name (a Kubernetes
//! headless Service returns every ready pod) resolved again every
//! `DISCOVERY_INTERVAL`, or a list of addresses. Each address is asked
//! who it is; it must answer with a proof of its own, so that a name that
//! resolves somewhere unexpected cannot collect forwarded sockets. Nothing
//! else is shared: no store, no leader, and a replica that dies takes only
//! its own sessions with it.

pub mod proof;
pub mod relay;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::auth::Secret;
use crate::metrics::Metrics;

/// How often `--peers` is resolved and each peer asked who it is.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(3);
/// How long a peer may take to answer a request.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Discovery rounds in a row a known peer may fail to answer before it
/// is taken out of the table. One slow answer on a loaded node must not
/// turn its sessions' reattaches into "owner gone"; a replica that is
/// really gone leaves within a few rounds (and a socket routed to it
/// meanwhile fails to connect, which ends the same way).
const MISSES_BEFORE_GONE: u32 = 3;
/// Hex digits of a session id that name its replica.
pub const TAG_LEN: usize = 8;

const IDENTITY_LABEL: &str = "peer-identity-v1";

/// Another replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub addr: SocketAddr,
}

/// Where a session (or a new session's chosen replica) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Local,
    Peer(Peer),
    /// A tag no known replica has: the replica is gone, or never was.
    Unknown,
}

/// What `/api/peer` answers: a name, and a proof that the answer comes
/// from a holder of the cluster secret.
#[derive(Serialize, Deserialize)]
pub struct Identity {
    pub node: String,
    pub proof: String,
}

/// This replica's view of the cluster.
pub struct Cluster {
    node: String,
    tag: String,
    /// Our own address in `--peers`' answers, skipped without asking.
    advertise: Option<SocketAddr>,
    specs: Vec<String>,
    secret: Option<Secret>,
    /// Where discovery asks a peer who it is, up to its query: the one
    /// target a proof addressed to any replica is good for.
    discovery: String,
    /// Peers by tag. Replaced whole by each discovery round; never held
    /// across an await.
    table: Mutex<HashMap<String, Peer>>,
    /// Rounds in a row each peer in the table has not answered; written
    /// only by the discovery round (which holds `round`).
    misses: Mutex<HashMap<String, u32>>,
    /// Why each address failed last round, so a failure is logged once.
    failing: Mutex<BTreeMap<SocketAddr, String>>,
    /// One discovery round at a time.
    round: async_lock::Mutex<()>,
    /// The peer proofs taken, so that none is taken twice.
    replays: proof::Replays,
}

impl Cluster {
    pub fn new(config: &crate::config::Config) -> Cluster {
        let node = config.node_id.clone().unwrap_or_else(host_name);
        Cluster {
            tag: tag_of(&node),
            node,
            advertise: config
                .advertise
                .as_deref()
                .and_then(|a| a.parse::<SocketAddr>().ok()),
            specs: config.peers.clone(),
            secret: config.secret.clone(),
            discovery: format!("{}/api/peer?", config.base_path),
            table: Mutex::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            failing: Mutex::new(BTreeMap::new()),
            round: async_lock::Mutex::new(()),
            replays: proof::Replays::default(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The first `TAG_LEN` hex digits of this replica's session ids.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Whether this replica has peers to forward to (and accepts theirs).
    pub fn enabled(&self) -> bool {
        !self.specs.is_empty() && self.secret.is_some()
    }

    /// The peers known now.
    pub fn peers(&self) -> Vec<Peer> {
        let mut v: Vec<Peer> = self.table().values().cloned().collect();
        v.sort_by(|a, b| a.node.cmp(&b.node));
        v
    }

    /// Where the session with this id (or this bare tag) lives, as known now.
    pub fn route(&self, id_or_tag: &str) -> Route {
        let Some(tag) = id_or_tag.get(..TAG_LEN) else {
            return Route::Unknown;
        };
        if tag == self.tag || !self.enabled() {
            return Route::Local;
        }
        match self.table().get(tag) {
            Some(p) => Route::Peer(p.clone()),
            None => Route::Unknown,
        }
    }

    /// Like `route`, but an unknown tag gets one fresh discovery round
    /// first: a replica that joined a moment ago is found, not refused.
    pub async fn locate(&self, id_or_tag: &str, metrics: &Metrics) -> Route {
        match self.route(id_or_tag) {
            Route::Unknown => {
                self.discover(metrics).await;
                self.route(id_or_tag)
            }
            known => known,
        }
    }

    /// The headers that prove a request to the peer named `to` (or
    /// `proof::ANY`, for discovery) comes from us.
    pub fn sign(&self, to: &str, req: &proof::Request) -> Vec<String> {
        let Some(secret) = &self.secret else {
            return Vec::new();
        };
        let mut headers = vec![
            format!("{}: {}", proof::CLIENT_HEADER, req.client),
            format!("{}: {}", proof::REMOTE_HEADER, req.remote),
        ];
        if let Some(p) = proof::sign(secret, &self.node, to, req) {
            headers.push(format!("{}: {p}", proof::HEADER));
        }
        headers
    }

    /// The peer's name, if `header` proves `req` came from one, for this
    /// replica, and was not used before.
    pub fn verify(&self, header: &str, req: &proof::Request) -> Result<String, &'static str> {
        match &self.secret {
            Some(secret) if self.enabled() => {
                let proven = proof::verify(secret, &self.replays, header, req)?;
                let discovery = req.target.starts_with(&self.discovery);
                if proven.to == self.node || (proven.to == proof::ANY && discovery) {
                    Ok(proven.from)
                } else {
                    Err("peer proof addressed to another replica")
                }
            }
            _ => Err("this replica has no --peers, so it takes no peer requests"),
        }
    }

    /// Our answer to a peer's "who are you", proving we hold the secret.
    pub fn identity(&self, nonce: &str) -> Option<Identity> {
        let secret = self.secret.as_ref()?;
        let mac = secret.tag(IDENTITY_LABEL, &[self.node.as_bytes(), nonce.as_bytes()])?;
        Some(Identity {
            node: self.node.clone(),
            proof: proof::hex(&mac),
        })
    }

    /// Runs discovery for as long as the server does.
    pub async fn discover_forever(&self, metrics: &Metrics) {
        if !self.enabled() {
            return;
        }
        loop {
            self.discover(metrics).await;
            futures_timer::Delay::new(DISCOVERY_INTERVAL).await;
        }
    }

    /// One round: resolve `--peers`, ask every address who it is, and make
    /// the answers the table.
    async fn discover(&self, metrics: &Metrics) {
        let _one = self.round.lock().await;
        let mut addrs = Vec::new();
        for spec in &self.specs {
            match async_std::net::ToSocketAddrs::to_socket_addrs(spec.as_str()).await {
                Ok(found) => addrs.extend(found),
                Err(e) => log::debug!("--peers {spec}: {e}"),
            }
        }
        addrs.sort();
        addrs.dedup();
        addrs.retain(|a| Some(*a) != self.advertise);
        let answers = join_all(addrs.iter().map(|a| self.ask(*a))).await;

        let mut table = HashMap::new();
        let mut failing = BTreeMap::new();
        for (addr, answer) in addrs.into_iter().zip(answers) {
            match answer {
                Ok(node) if node == self.node => {}
                Ok(node) => {
                    let tag = tag_of(&node);
                    if tag == self.tag {
                        failing.insert(addr, format!("its name {node:?} has the same tag as ours ({}); give one of them another --node-id", self.node));
                        continue;
                    }
                    table.insert(tag, Peer { node, addr });
                }
                Err(why) => {
                    failing.insert(addr, why);
                }
            }
        }
        let unanswered: std::collections::BTreeSet<SocketAddr> = failing.keys().copied().collect();
        {
            let mut was = self.failing.lock().unwrap_or_else(|e| e.into_inner());
            for (addr, why) in &failing {
                if was.get(addr) != Some(why) {
                    log::warn!("peer {addr}: {why}");
                }
            }
            *was = failing;
        }
        let mut old = self.table();
        {
            // A known peer whose address is still listed but did not
            // answer this round stays for a few rounds (MISSES_BEFORE_GONE).
            let mut misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
            misses.retain(|tag, _| !table.contains_key(tag));
            for (tag, p) in old.iter() {
                if table.contains_key(tag) || !unanswered.contains(&p.addr) {
                    continue;
                }
                let missed = misses.entry(tag.clone()).or_insert(0);
                *missed += 1;
                if *missed < MISSES_BEFORE_GONE {
                    table.insert(tag.clone(), p.clone());
                }
            }
            misses.retain(|tag, _| table.contains_key(tag));
        }
        for (tag, p) in &table {
            if old.get(tag) != Some(p) {
                log::info!("peer {} at {} joined", p.node, p.addr);
            }
        }
        for (tag, p) in old.iter() {
            if !table.contains_key(tag) {
                log::info!("peer {} at {} left", p.node, p.addr);
            }
        }
        metrics.set_peers(table.len());
        *old = table;
    }

    /// Asks `addr` who it is; only a holder of the secret can answer.
    async fn ask(&self, addr: SocketAddr) -> Result<String, String> {
        let nonce = crate::random::hex(16);
        let target = format!("{}nonce={nonce}", self.discovery);
        let headers = self.sign(
            proof::ANY,
            &proof::Request {
                method: "GET",
                target: &target,
                client: "peer",
                remote: "peer",
            },
        );
        let (status, body) =
            crate::fetch::request(addr, "GET", &target, &headers, PEER_TIMEOUT).await?;
        if status != 200 {
            return Err(format!("answered {status} to who-are-you: {}", body.trim()));
        }
        let id: Identity =
            serde_json::from_str(&body).map_err(|e| format!("unreadable identity: {e}"))?;
        let proof = proof::unhex(&id.proof).unwrap_or_default();
        let secret = self.secret.as_ref().ok_or("no secret")?;
        if !secret.verify(
            IDENTITY_LABEL,
            &[id.node.as_bytes(), nonce.as_bytes()],
            &proof,
        ) {
            return Err(format!(
                "claims to be {:?} but cannot prove it (a different --secret-file?)",
                id.node
            ));
        }
        Ok(id.node)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The tag a replica's session ids start with: the first hex digits of
/// SHA-256 of its name. 32 bits: two replicas of one deployment sharing a
/// tag is a one-in-a-billion accident, and discovery says so if it happens.
pub fn tag_of(node: &str) -> String {
    proof::hex(&Sha256::digest(node.as_bytes())[..TAG_LEN / 2])
}

/// The kernel's host name (a pod's name, in Kubernetes), made a valid
/// node name (see `config`'s `node_name`).
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    if name.is_empty() {
        "webterm".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tags_and_addresses() {
        assert_eq!(tag_of("webterm-0").len(), TAG_LEN);
        assert_ne!(tag_of("webterm-0"), tag_of("webterm-1"));
        assert!(tag_of("a").bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!host_name().is_empty());
    }

    #[test]
    fn routes_by_tag() {
        let config = crate::config::Config {
            node_id: Some("a".into()),
            peers: vec!["127.0.0.1:1".into()],
            secret: Some(Secret::from_file_contents(&[7; 40]).unwrap()),
            ..Default::default()
        };
        let c = Cluster::new(&config);
        let b = Peer {
            node: "b".into(),
            addr: "127.0.0.1:2".parse().unwrap(),
        };
        c.table().insert(tag_of("b"), b.clone());
        assert_eq!(c.route(&format!("{}0000", tag_of("a"))), Route::Local);
        assert_eq!(c.route(&format!("{}0000", tag_of("b"))), Route::Peer(b));
        assert_eq!(c.route("ffffffff0000"), Route::Unknown);
        assert_eq!(c.route("ab"), Route::Unknown);
        // Without --peers, every id is ours.
        let alone = Cluster::new(&crate::config::Config::default());
        assert_eq!(alone.route("ffffffff0000"), Route::Local);
    }
}
