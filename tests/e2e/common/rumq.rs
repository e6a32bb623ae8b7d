//! rumqttc clients, 3.1.1 ([`RumqV4`]) and 5.0 ([`RumqV5`]): each event loop runs in a
//! tokio task that records every event, for the tests that use a real third-party client.

use super::IO_TIMEOUT;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A rumqttc 3.1.1 client; its event loop runs in a task that records every event.
pub struct RumqV4 {
    pub client: rumqttc::AsyncClient,
    pub events: Arc<Mutex<Vec<rumqttc::Event>>>,
    pub error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RumqV4 {
    /// Connects and waits for CONNACK.
    pub async fn connect(mut opts: rumqttc::MqttOptions) -> RumqV4 {
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 100);
        let events = Arc::new(Mutex::new(Vec::new()));
        let error = Arc::new(Mutex::new(None));
        let (ev, er) = (events.clone(), error.clone());
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(e) => ev.lock().unwrap().push(e),
                    Err(e) => {
                        *er.lock().unwrap() = Some(e.to_string());
                        break;
                    }
                }
            }
        });
        let c = RumqV4 { client, events, error, task };
        let ok = wait_until(IO_TIMEOUT, || {
            c.count(|e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) > 0
        })
        .await;
        assert!(ok, "rumqttc v4: no CONNACK ({:?})", c.error.lock().unwrap());
        c
    }

    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
        rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port())
    }

    pub fn count(&self, f: impl Fn(&rumqttc::Event) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| f(e)).count()
    }

    /// The PUBLISH packets received so far.
    pub fn publishes(&self) -> Vec<rumqttc::Publish> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits until at least `n` PUBLISH packets arrived; returns them.
    pub async fn wait_publishes(&self, n: usize, timeout: Duration) -> Vec<rumqttc::Publish> {
        wait_until(timeout, || self.publishes().len() >= n).await;
        let got = self.publishes();
        assert!(
            got.len() >= n,
            "rumqttc v4: expected {n} publishes, got {got:?} (error: {:?})",
            self.error.lock().unwrap()
        );
        got
    }

    /// Waits for an event matching `f`.
    pub async fn wait_event(&self, what: &str, f: impl Fn(&rumqttc::Event) -> bool) {
        let ok = wait_until(IO_TIMEOUT, || self.count(&f) > 0).await;
        assert!(ok, "rumqttc v4: no {what} (error: {:?})", self.error.lock().unwrap());
    }

    pub async fn wait_suback(&self, n: usize) {
        let ok = wait_until(IO_TIMEOUT, || {
            self.count(|e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))) >= n
        })
        .await;
        assert!(ok, "rumqttc v4: no SUBACK (error: {:?})", self.error.lock().unwrap());
    }
}

impl Drop for RumqV4 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A rumqttc 5.0 client; its event loop runs in a task that records every event.
pub struct RumqV5 {
    pub client: rumqttc::v5::AsyncClient,
    pub events: Arc<Mutex<Vec<rumqttc::v5::Event>>>,
    pub error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

pub type V5Packet = rumqttc::v5::mqttbytes::v5::Packet;

impl RumqV5 {
    pub async fn connect(mut opts: rumqttc::v5::MqttOptions) -> RumqV5 {
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 100);
        let events = Arc::new(Mutex::new(Vec::new()));
        let error = Arc::new(Mutex::new(None));
        let (ev, er) = (events.clone(), error.clone());
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(e) => ev.lock().unwrap().push(e),
                    Err(e) => {
                        *er.lock().unwrap() = Some(e.to_string());
                        break;
                    }
                }
            }
        });
        let c = RumqV5 { client, events, error, task };
        let ok = wait_until(IO_TIMEOUT, || {
            c.count(|e| matches!(e, rumqttc::v5::Event::Incoming(V5Packet::ConnAck(_)))) > 0
        })
        .await;
        assert!(ok, "rumqttc v5: no CONNACK ({:?})", c.error.lock().unwrap());
        c
    }

    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
        rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port())
    }

    pub fn count(&self, f: impl Fn(&rumqttc::v5::Event) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| f(e)).count()
    }

    pub fn publishes(&self) -> Vec<rumqttc::v5::mqttbytes::v5::Publish> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                rumqttc::v5::Event::Incoming(V5Packet::Publish(p)) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    pub async fn wait_publishes(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::Publish> {
        wait_until(timeout, || self.publishes().len() >= n).await;
        let got = self.publishes();
        assert!(
            got.len() >= n,
            "rumqttc v5: expected {n} publishes, got {got:?} (error: {:?})",
            self.error.lock().unwrap()
        );
        got
    }

    pub async fn wait_event(&self, what: &str, f: impl Fn(&rumqttc::v5::Event) -> bool) {
        let ok = wait_until(IO_TIMEOUT, || self.count(&f) > 0).await;
        assert!(ok, "rumqttc v5: no {what} (error: {:?})", self.error.lock().unwrap());
    }

    pub async fn wait_suback(&self, n: usize) {
        let ok = wait_until(IO_TIMEOUT, || {
            self.count(|e| matches!(e, rumqttc::v5::Event::Incoming(V5Packet::SubAck(_)))) >= n
        })
        .await;
        assert!(ok, "rumqttc v5: no SUBACK (error: {:?})", self.error.lock().unwrap());
    }
}

impl Drop for RumqV5 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs an async test body on a current-thread runtime, bounded by `limit`.
pub fn run_async<F: std::future::Future<Output = ()>>(limit: Duration, f: F) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        tokio::time::timeout(limit, f).await.expect("test body timed out");
    });
}
