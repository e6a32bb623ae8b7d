//! [`TestBroker`]: a broker running in the test's own process.

use super::SHARDS;
use ringmq::config::Config;
use ringmq::shard::Broker;
use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

static QUIET_LOGS: Once = Once::new();

/// A broker running in this process; shut down on drop.
pub struct TestBroker {
    broker: Option<Broker>,
    pub addr: SocketAddr,
}

impl TestBroker {
    /// [`SHARDS`] shards on an ephemeral loopback port, default limits.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// As [`TestBroker::start`], with the config adjusted by `f` first.
    pub fn start_with(f: impl FnOnce(&mut Config)) -> Self {
        QUIET_LOGS.call_once(|| {
            let verbose = std::env::var_os("RINGMQ_TEST_LOG").is_some();
            ringmq::log::set_level(if verbose {
                ringmq::log::Level::Debug
            } else {
                ringmq::log::Level::Warning
            });
        });
        let mut config = Config {
            listeners: vec![ringmq::config::ListenerConfig::on("127.0.0.1:0".parse().unwrap())],
            cores: SHARDS,
            cpus: None,
            ..Config::default()
        };
        f(&mut config);
        let broker = Broker::start(config, 0).expect("broker starts");
        let addr = broker.local_addrs()[0];
        TestBroker { broker: Some(broker), addr }
    }

    /// The running broker (its listening addresses, for tests with several listeners).
    pub fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("running")
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                b.shutdown();
                let _ = tx.send(());
            });
            if rx.recv_timeout(Duration::from_secs(10)).is_err() && !std::thread::panicking() {
                panic!("broker shutdown did not finish within 10 s");
            }
        }
    }
}
