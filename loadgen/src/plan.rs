//! Who connects where: the clients of a scenario, their topics and filters, which
//! publishers each subscriber expects, and which load thread owns each client.
//!
//! Topics live under the run's root (`<prefix>/<run id>`), so runs never see each other:
//!
//! | scenario | publisher i publishes to | subscribers subscribe to |
//! |---|---|---|
//! | pairs | `ROOT/pairs/i` | subscriber i: `ROOT/pairs/i` |
//! | fanin | `ROOT/fanin/i` | `ROOT/fanin/+` |
//! | fanout | `ROOT/fanout` | `ROOT/fanout` |
//! | shared | `ROOT/shared/i` | `$share/GROUP/ROOT/shared/+` |
//! | retained | `ROOT/retained/SEQ` (retained) | `ROOT/retained/+` |
//! | file | `ROOT/TOPIC` of its group | `ROOT/FILTER` of its group |

use crate::checker::SharedSeen;
use crate::config::{Kind, RunConfig};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

/// A shared-subscription group: one bitmap per publisher, marked by every member.
pub struct Group {
    pub seen: Vec<SharedSeen>,
}

/// What a client does.
#[derive(Clone)]
pub enum Role {
    Publisher {
        id: u32,
        /// The topic, or for `retained` the prefix to which `/SEQ` is appended.
        topic: String,
    },
    Subscriber {
        filter: String,
        /// Publisher ids whose every message this subscriber (or its group) must get.
        expects: Range<u32>,
        group: Option<Arc<Group>>,
        qos: u8,
    },
    /// `conn`: connects at `start_offset_ns` after the start and holds the connection.
    Idle { start_offset_ns: u64 },
}

/// One client.
#[derive(Clone)]
pub struct ClientSpec {
    pub client_id: String,
    pub role: Role,
    pub source_ip: Option<IpAddr>,
}

/// The whole run's clients, by thread.
pub struct Plan {
    pub threads: Vec<Vec<ClientSpec>>,
    /// Deliveries each message of publisher p is owed (subscribers plus groups that match).
    pub deliveries_per_msg: Vec<u64>,
    /// The QoS every delivery of publisher p's messages has at least: the lower of its
    /// own and its subscribers' (MQTT delivers at the lower of the two). Above 0, none
    /// may be lost; at 2, none duplicated.
    pub delivery_qos: Vec<u8>,
}

impl Plan {
    pub fn build(cfg: &RunConfig) -> Plan {
        let root = &cfg.topic_root;
        let cp = &cfg.client_prefix;
        let mut threads: Vec<Vec<ClientSpec>> = (0..cfg.threads).map(|_| Vec::new()).collect();
        let mut next_ip = 0usize;
        let mut source = || {
            let ip = (!cfg.source_ips.is_empty()).then(|| cfg.source_ips[next_ip % cfg.source_ips.len()]);
            next_ip += 1;
            ip
        };
        let pubs = cfg.pubs;
        let subs = cfg.subs;
        let mut deliveries_per_msg = vec![0u64; pubs as usize];
        let mut delivery_qos: Vec<u8> = (0..pubs).map(|p| cfg.publisher_qos(p) as u8).collect();
        let group = (cfg.scenario == Kind::Shared)
            .then(|| Arc::new(Group { seen: (0..pubs).map(|_| SharedSeen::default()).collect() }));
        // Subscribers first, then publishers, each dealt round-robin over the threads, so
        // that both roles spread evenly.
        for s in 0..subs {
            let (filter, expects) = match cfg.scenario {
                Kind::Pairs => (format!("{root}/pairs/{s}"), s..s + 1),
                Kind::Fanin => (format!("{root}/fanin/+"), 0..pubs),
                Kind::Fanout => (format!("{root}/fanout"), 0..pubs),
                Kind::Shared => {
                    let g = cfg.group.as_deref().unwrap_or("g");
                    (format!("$share/{g}/{root}/shared/+"), 0..pubs)
                }
                Kind::Retained => (format!("{root}/retained/+"), 0..1),
                Kind::File => {
                    let t = cfg.traffic.as_ref().expect("a file run has its traffic");
                    let f = &t.subscriber_group(s).filter;
                    (format!("{root}/{f}"), t.expects(f).expect("checked when the file was read"))
                }
                Kind::Conn => unreachable!("conn has no subscribers"),
            };
            let qos = cfg.subscriber_qos(s);
            for p in expects.clone() {
                let q = &mut delivery_qos[p as usize];
                *q = (*q).min(qos);
            }
            if cfg.scenario != Kind::Shared {
                for p in expects.clone() {
                    deliveries_per_msg[p as usize] += 1;
                }
            }
            let spec = ClientSpec {
                client_id: format!("{cp}-s{s}"),
                role: Role::Subscriber { filter, expects, group: group.clone(), qos },
                source_ip: source(),
            };
            threads[s as usize % cfg.threads].push(spec);
        }
        if group.is_some() {
            for d in &mut deliveries_per_msg {
                *d += 1;
            }
        }
        let file_topics = cfg.traffic.as_ref().map(|t| t.publishers()).unwrap_or_default();
        for p in 0..pubs {
            let topic = match cfg.scenario {
                Kind::Pairs => format!("{root}/pairs/{p}"),
                Kind::Fanin => format!("{root}/fanin/{p}"),
                Kind::Fanout => format!("{root}/fanout"),
                Kind::Shared => format!("{root}/shared/{p}"),
                Kind::Retained => format!("{root}/retained"),
                Kind::File => format!("{root}/{}", file_topics[p as usize].1),
                Kind::Conn => unreachable!("conn has no publishers"),
            };
            let spec = ClientSpec {
                client_id: format!("{cp}-p{p}"),
                role: Role::Publisher { id: p, topic },
                source_ip: source(),
            };
            threads[(subs + p) as usize % cfg.threads].push(spec);
        }
        if cfg.scenario == Kind::Conn {
            let interval_ns = 1e9 / cfg.conn_rate_per_s;
            for c in 0..cfg.conn_n {
                let spec = ClientSpec {
                    client_id: format!("{cp}-c{c}"),
                    role: Role::Idle { start_offset_ns: (c as f64 * interval_ns) as u64 },
                    source_ip: source(),
                };
                threads[c as usize % cfg.threads].push(spec);
            }
        }
        Plan { threads, deliveries_per_msg, delivery_qos }
    }
}
