//! Persistence (docs/persistence.md): what survives a broker shut down and
//! started again on the same directory, in this process. Stored so far: retained
//! messages. `persistence true` is still refused in a config file, so these tests set
//! the configuration directly.

use crate::common::*;
use ringmq::config::{Config, PersistenceSync};
use ringmq::protocol::Packet;
use std::path::{Path, PathBuf};

/// A fresh directory for one test's store.
fn store_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringmq-e2e-persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn persistent(dir: &Path, sync: PersistenceSync) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        c.persistence.enabled = true;
        c.persistence.location = dir.to_path_buf();
        c.persistence.file = "e2e.db".into();
        c.persistence.sync = sync;
    }
}

/// Subscribes to `filter` and gathers the retained messages sent, as (topic, payload).
fn retained(
    addr: std::net::SocketAddr,
    id: &str,
    version: ProtocolVersion,
    filter: &str,
) -> Vec<(String, String)> {
    let mut sub = Raw::client(addr, id, version);
    sub.subscribe_ok(&[(filter, Q1)]);
    let mut got = Vec::new();
    while let Recv::Packet(Packet::Publish(p)) = sub.recv(QUIET) {
        assert!(p.retain, "{p:?}");
        sub.ack(&p);
        got.push((p.topic.to_string(), payload_str(&p)));
    }
    got.sort();
    got
}

#[test]
fn retained_messages_survive_a_restart_at_3_1_1_and_5() {
    let dir = store_dir("retained");
    for sync in [PersistenceSync::Fsync, PersistenceSync::IntervalMs(50), PersistenceSync::Os] {
        let _ = std::fs::remove_dir_all(&dir);
        {
            let b = TestBroker::start_with(persistent(&dir, sync));
            for (version, v) in [(V3_1_1, "v4"), (V5, "v5")] {
                let mut publisher = Raw::client(b.addr, format!("persist-pub-{v}"), version);
                publisher.publish(&format!("p/{v}/q0"), b"zero", Q0, true);
                publisher.publish(&format!("p/{v}/q1"), b"one", Q1, true);
                publisher.publish(&format!("p/{v}/q2"), b"two", Q2, true);
                publisher.publish(&format!("p/{v}/gone"), b"soon cleared", Q1, true);
                publisher.publish(&format!("p/{v}/gone"), b"", Q1, true);
                publisher.publish(&format!("p/{v}/q1"), b"one again", Q1, true);
            }
            // A QoS 0 PUBLISH waits for nothing: a QoS 1 one behind it on the same
            // connection is acknowledged after both are written.
            let mut fence = Raw::client(b.addr, "persist-fence", V5);
            fence.publish("p/fence", b"f", Q1, true);
            // SIGUSR1's save (sync and compact) changes nothing that is read back.
            b.broker().save();
        }
        let b = TestBroker::start_with(persistent(&dir, sync));
        let want = |v: &str| {
            vec![
                (format!("p/{v}/q0"), "zero".to_string()),
                (format!("p/{v}/q1"), "one again".to_string()),
                (format!("p/{v}/q2"), "two".to_string()),
            ]
        };
        assert_eq!(retained(b.addr, "persist-sub-v4", V3_1_1, "p/v4/#"), want("v4"), "{sync:?}");
        assert_eq!(retained(b.addr, "persist-sub-v5", V5, "p/v5/#"), want("v5"), "{sync:?}");
        // A retained message set after the restart replaces the recovered one: the
        // sequence numbers go on past the stored ones.
        let mut publisher = Raw::client(b.addr, "persist-pub-after", V5);
        publisher.publish("p/v4/q1", b"after restart", Q1, true);
        let got = retained(b.addr, "persist-sub-after", V5, "p/v4/q1");
        assert_eq!(got, vec![("p/v4/q1".to_string(), "after restart".to_string())], "{sync:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_corrupt_or_torn_store_is_cut_and_the_broker_starts() {
    let dir = store_dir("corrupt");
    {
        let b = TestBroker::start_with(persistent(&dir, PersistenceSync::Fsync));
        let mut publisher = Raw::client(b.addr, "persist-corrupt-pub", V3_1_1);
        publisher.publish("c/keep", b"KEEP-PAYLOAD", Q1, true);
        publisher.publish("c/last", b"LAST-PAYLOAD", Q1, true);
    }
    // The publisher's shard wrote both: flip a byte of the last record's payload, then
    // add bytes of a torn write after it.
    let mut hit = false;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(12).position(|w| w == b"LAST-PAYLOAD") {
            bytes[at] ^= 0x20;
            let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
            bytes.splice(end..end + 5, [0xAB; 5]);
            std::fs::write(&path, &bytes).unwrap();
            hit = true;
        }
    }
    assert!(hit, "a shard's log holds the message");
    let b = TestBroker::start_with(persistent(&dir, PersistenceSync::Fsync));
    assert_eq!(
        retained(b.addr, "persist-corrupt-sub", V5, "c/#"),
        vec![("c/keep".into(), "KEEP-PAYLOAD".into())]
    );
    // The cut log takes new records again, and keeps them.
    let mut publisher = Raw::client(b.addr, "persist-corrupt-pub2", V5);
    publisher.publish("c/new", b"NEW", Q1, true);
    drop(publisher);
    drop(b);
    let b = TestBroker::start_with(persistent(&dir, PersistenceSync::Fsync));
    let got = retained(b.addr, "persist-corrupt-sub2", V5, "c/#");
    assert_eq!(got, vec![("c/keep".into(), "KEEP-PAYLOAD".into()), ("c/new".into(), "NEW".into())]);
    drop(b);
    std::fs::remove_dir_all(dir).unwrap();
}
