//! TLS listeners end to end, with a rustls client and certificates made for each test
//! by rcgen (no key is committed): MQTT 3.1.1 and 5.0 over TLS, client certificates
//! required and refused without one, the certificate's name as the user name under an
//! ACL, a handshake that never finishes, garbage instead of a ClientHello, a reload that
//! swaps the certificate, and a key that does not load.

use crate::common::{publish_packet, Conn, TestBroker, IO_TIMEOUT, Q1, V3_1_1, V5};
use bytes::BytesMut;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose,
    IsCa, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use ringmq::config::{Config, TlsOptions};
use ringmq::protocol::{
    ByteStr, Decoded, Decoder, Packet, ProtocolVersion, QoS, ReasonCode, Subscribe, SubscriptionOptions,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A scratch directory with a CA, a server certificate and client certificates; removed
/// when dropped.
pub(crate) struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ringmq-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("ringmq test CA {n}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        let pki = Pki { dir, ca, ca_key };
        let (cert, key) = pki.issue(&["localhost", "127.0.0.1"], None, ExtendedKeyUsagePurpose::ServerAuth);
        std::fs::write(pki.dir.join("server.crt"), cert).unwrap();
        std::fs::write(pki.dir.join("server.key"), key).unwrap();
        pki
    }

    /// A certificate signed by the CA: (certificate PEM, key PEM).
    fn issue(&self, names: &[&str], cn: Option<&str>, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        self.issue_serial(names, cn, usage, None)
    }

    /// As [`Pki::issue`], with a chosen serial number (for a revocation list).
    fn issue_serial(
        &self,
        names: &[&str],
        cn: Option<&str>,
        usage: ExtendedKeyUsagePurpose,
        serial: Option<u64>,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.serial_number = serial.map(SerialNumber::from);
        if let Some(cn) = cn {
            // In this order (rcgen's default name has a CN first): O, then CN.
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(DnType::OrganizationName, "ringmq tests");
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Server options: this CA's server certificate and key.
    pub(crate) fn server(&self) -> TlsOptions {
        TlsOptions {
            certfile: Some(self.path("server.crt")),
            keyfile: Some(self.path("server.key")),
            ..Default::default()
        }
    }

    /// Server options that require a client certificate from this CA.
    fn mutual(&self) -> TlsOptions {
        TlsOptions { cafile: Some(self.path("ca.crt")), require_certificate: true, ..self.server() }
    }

    /// A client that trusts this CA, with a client certificate named `cn` if given.
    pub(crate) fn client(&self, cn: Option<&str>) -> Arc<ClientConfig> {
        let cert = cn.map(|cn| self.issue(&[], Some(cn), ExtendedKeyUsagePurpose::ClientAuth));
        self.client_with(cert)
    }

    /// A client that trusts this CA, with this client certificate and key (PEM) if given.
    fn client_with(&self, cert: Option<(String, String)>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let cert = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(vec![cert], key).unwrap()
            }
        };
        Arc::new(config)
    }
}

impl Pki {
    /// A revocation list from this CA, revoking these serial numbers.
    fn crl(&self, revoked: &[u64]) -> String {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: rcgen::date_time_ymd(2021, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.ca, &self.ca_key).unwrap().pem().unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A blocking MQTT client over rustls, every read bounded by a deadline.
struct TlsClient {
    tls: StreamOwned<ClientConnection, TcpStream>,
    version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
    next_id: u16,
}

/// What a read ended with.
#[derive(Debug)]
enum Got {
    Packet(Packet),
    /// The broker closed the connection, or TLS failed (an alert, a reset): why.
    Closed(#[allow(dead_code)] String),
    Timeout,
}

impl TlsClient {
    /// Opens TCP and TLS (the handshake runs with the first write or read).
    fn open(addr: SocketAddr, config: Arc<ClientConfig>, version: ProtocolVersion) -> TlsClient {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        TlsClient {
            tls: StreamOwned::new(conn, stream),
            version,
            decoder: Decoder::with_version(version, usize::MAX),
            buf: BytesMut::new(),
            next_id: 0,
        }
    }

    /// Opens, sends CONNECT and returns the answer.
    fn connect(addr: SocketAddr, config: Arc<ClientConfig>, c: Conn) -> (TlsClient, Got) {
        let mut client = TlsClient::open(addr, config, c.version);
        let sent = client.try_send(&c.packet());
        let got = match sent {
            Ok(()) => client.recv(IO_TIMEOUT),
            Err(e) => Got::Closed(e.to_string()),
        };
        (client, got)
    }

    /// A connection whose CONNECT succeeded.
    fn connect_ok(addr: SocketAddr, config: Arc<ClientConfig>, c: Conn) -> TlsClient {
        let id = c.client_id.clone();
        match TlsClient::connect(addr, config, c) {
            (client, Got::Packet(Packet::ConnAck(a))) if a.code == ReasonCode::SUCCESS => client,
            (_, other) => panic!("{id}: expected a successful CONNACK, got {other:?}"),
        }
    }

    fn try_send(&mut self, p: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        p.encode(self.version, &mut out);
        self.tls.write_all(&out)?;
        self.tls.flush()
    }

    fn send(&mut self, p: &Packet) {
        self.try_send(p).unwrap();
    }

    fn recv(&mut self, timeout: Duration) -> Got {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Decoded::Packet(p)) => return Got::Packet(p),
                Ok(Decoded::Incomplete { .. }) => {}
                Err(e) => panic!("malformed packet from the broker: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Timeout;
            }
            self.tls.sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            let mut tmp = [0u8; 16 * 1024];
            match self.tls.read(&mut tmp) {
                Ok(0) => return Got::Closed("end of stream".into()),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                // A signal for another thread of the test process may interrupt a read.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Got::Closed(e.to_string()),
            }
        }
    }

    fn expect(&mut self, what: &str) -> Packet {
        match self.recv(IO_TIMEOUT) {
            Got::Packet(p) => p,
            other => panic!("expected {what}, got {other:?}"),
        }
    }

    fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<ReasonCode> {
        self.next_id += 1;
        let filters = vec![(ByteStr::from(filter), SubscriptionOptions::qos(qos))];
        self.send(&Packet::Subscribe(Subscribe { packet_id: self.next_id, filters, properties: None }));
        match self.expect("SUBACK") {
            Packet::SubAck(a) => a.reasons,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    fn publish_q1(&mut self, topic: &str, payload: &[u8]) {
        self.next_id += 1;
        self.send(&publish_packet(topic, payload, Q1, false, self.next_id, None));
        match self.expect("PUBACK") {
            Packet::PubAck(a) => assert_eq!(a.packet_id, self.next_id),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

/// rustls's ring provider (deprecated in rustls for lacking post-quantum key exchange,
/// which the broker does not offer either).
#[allow(deprecated)]
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_broker(tls: TlsOptions, f: impl FnOnce(&mut Config)) -> TestBroker {
    TestBroker::start_with(|c| {
        c.listeners[0].tls = tls;
        c.security.allow_anonymous = Some(true);
        f(c);
    })
}

/// Whether the connection ends without a CONNACK (refused by the handshake).
fn refused_by_tls(got: &Got) -> bool {
    matches!(got, Got::Closed(_))
}

#[test]
fn publish_and_subscribe_over_tls_at_3_1_1_and_5_0() {
    let pki = Pki::new();
    let broker = tls_broker(pki.server(), |_| {});
    for v in [V3_1_1, V5] {
        let mut sub =
            TlsClient::connect_ok(broker.addr, pki.client(None), Conn::new(format!("tls-sub-{v:?}"), v));
        assert_eq!(sub.subscribe("tls/#", Q1), [ReasonCode(1)]);
        let mut publisher =
            TlsClient::connect_ok(broker.addr, pki.client(None), Conn::new(format!("tls-pub-{v:?}"), v));
        // A small message, then one spanning many TLS records (16 KiB each).
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        publisher.publish_q1("tls/small", b"hello");
        publisher.publish_q1("tls/big", &big);
        for (topic, payload) in [("tls/small", &b"hello"[..]), ("tls/big", &big[..])] {
            match sub.expect("PUBLISH") {
                Packet::Publish(p) => {
                    assert_eq!((&*p.topic, &p.payload[..]), (topic, payload));
                    sub.send(&Packet::PubAck(ringmq::protocol::Ack::new(p.packet_id)));
                }
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }
}

#[test]
fn tls_1_3_only_refuses_a_tls_1_2_client() {
    let pki = Pki::new();
    let tls = TlsOptions { tls_version: Some(ringmq::config::TlsVersion::Tls13), ..pki.server() };
    let broker = tls_broker(tls, |_| {});
    TlsClient::connect_ok(broker.addr, pki.client(None), Conn::new("tls13", V5));
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let tls12 = ClientConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (_, got) = TlsClient::connect(broker.addr, Arc::new(tls12), Conn::new("tls12", V5));
    assert!(refused_by_tls(&got), "{got:?}");
}

#[test]
fn a_required_client_certificate_lets_in_its_holder_and_refuses_others() {
    let pki = Pki::new();
    let broker = tls_broker(pki.mutual(), |_| {});
    for v in [V3_1_1, V5] {
        let mut c = TlsClient::connect_ok(broker.addr, pki.client(Some("device-1")), Conn::new("mtls-ok", v));
        assert_eq!(c.subscribe("m/#", Q1), [ReasonCode(1)]);
        let (_, got) = TlsClient::connect(broker.addr, pki.client(None), Conn::new("mtls-none", v));
        assert!(refused_by_tls(&got), "without a certificate: {got:?}");
        // A certificate from another authority is refused too.
        let other = Pki::new();
        let (_, got) =
            TlsClient::connect(broker.addr, other.client(Some("device-1")), Conn::new("mtls-x", v));
        assert!(refused_by_tls(&got), "another CA's certificate: {got:?}");
    }
}

#[test]
fn the_certificate_common_name_is_the_user_name_for_the_acl() {
    let pki = Pki::new();
    let acl = pki.path("acl");
    std::fs::write(&acl, "user sensor-1\ntopic readwrite sensors/1/#\n").unwrap();
    let tls = TlsOptions { use_identity_as_username: true, ..pki.mutual() };
    let broker = tls_broker(tls, |c| {
        c.security.allow_anonymous = Some(false);
        c.security.acl_file = Some(acl.clone());
    });
    for v in [V3_1_1, V5] {
        // No user name in CONNECT (allow_anonymous is false): the certificate's CN is.
        let config = pki.client(Some("sensor-1"));
        let mut c = TlsClient::connect_ok(broker.addr, config.clone(), Conn::new("cn-1", v));
        assert_eq!(c.subscribe("sensors/1/#", Q1), [ReasonCode(1)]);
        let refused = if v == V5 { ReasonCode::NOT_AUTHORIZED } else { ReasonCode(0x80) };
        assert_eq!(c.subscribe("sensors/2/#", Q1), [refused]);
        // A CONNECT user name and password do not replace the certificate's name.
        let mut c = TlsClient::connect_ok(broker.addr, config, Conn::new("cn-1b", v).login("admin", "wrong"));
        assert_eq!(c.subscribe("sensors/1/t", Q1), [ReasonCode(1)]);
        // Another certificate's holder is another user, with no rule here.
        let mut other =
            TlsClient::connect_ok(broker.addr, pki.client(Some("sensor-2")), Conn::new("cn-2", v));
        assert_eq!(other.subscribe("sensors/1/#", Q1), [refused]);
    }
}

/// Reads a raw socket until the broker closes it (an end of stream or a reset, within
/// five seconds); returns what came first (an alert, at most).
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut seen = Vec::new();
    loop {
        let mut tmp = [0u8; 256];
        match s.read(&mut tmp) {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&tmp[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {IO_TIMEOUT:?}; read {seen:?}")
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return seen,
        }
    }
}

#[test]
fn the_certificate_subject_is_the_user_name_with_use_subject_as_username() {
    let pki = Pki::new();
    let acl = pki.path("acl");
    std::fs::write(&acl, "user CN=sensor-9,O=ringmq tests\ntopic readwrite s9/#\n").unwrap();
    let tls = TlsOptions { use_subject_as_username: true, ..pki.mutual() };
    let broker = tls_broker(tls, |c| {
        c.security.allow_anonymous = Some(false);
        c.security.acl_file = Some(acl.clone());
    });
    let mut c = TlsClient::connect_ok(broker.addr, pki.client(Some("sensor-9")), Conn::new("subject-9", V5));
    assert_eq!(c.subscribe("s9/#", Q1), [ReasonCode(1)]);
    assert_eq!(c.subscribe("s1/#", Q1), [ReasonCode::NOT_AUTHORIZED]);
}

#[test]
fn crlfile_refuses_a_revoked_client_certificate() {
    let pki = Pki::new();
    std::fs::write(pki.path("ca.crl"), pki.crl(&[7])).unwrap();
    let tls = TlsOptions { crlfile: Some(pki.path("ca.crl")), ..pki.mutual() };
    let broker = tls_broker(tls, |_| {});
    let usage = || ExtendedKeyUsagePurpose::ClientAuth;
    let good = pki.client_with(Some(pki.issue_serial(&[], Some("good"), usage(), Some(8))));
    TlsClient::connect_ok(broker.addr, good, Conn::new("crl-good", V5));
    let revoked = pki.client_with(Some(pki.issue_serial(&[], Some("revoked"), usage(), Some(7))));
    let (_, got) = TlsClient::connect(broker.addr, revoked, Conn::new("crl-revoked", V5));
    assert!(refused_by_tls(&got), "a revoked certificate got in: {got:?}");
}

#[test]
fn capath_holds_the_client_certificates_authority() {
    let pki = Pki::new();
    let dir = pki.path("certs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(pki.path("ca.crt"), dir.join("ringmq-test-ca.pem")).unwrap();
    std::fs::write(dir.join("README"), "not a certificate\n").unwrap();
    let tls = TlsOptions { cafile: None, capath: Some(dir), ..pki.mutual() };
    let broker = tls_broker(tls, |_| {});
    TlsClient::connect_ok(broker.addr, pki.client(Some("from-capath")), Conn::new("capath", V3_1_1));
    let (_, got) = TlsClient::connect(broker.addr, pki.client(None), Conn::new("capath-none", V3_1_1));
    assert!(refused_by_tls(&got), "{got:?}");
}

#[test]
fn a_handshake_that_never_finishes_is_closed_at_connect_timeout() {
    let pki = Pki::new();
    let broker = tls_broker(pki.server(), |c| c.connect_timeout_secs = 1);
    let start = Instant::now();
    // A TLS record header promising a ClientHello that never comes.
    let mut stalled = TcpStream::connect(broker.addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let mut silent = TcpStream::connect(broker.addr).unwrap();
    for s in [&mut stalled, &mut silent] {
        let seen = read_until_closed(s);
        assert!(seen.is_empty() || seen[0] == 0x15, "only an alert record may come back: {seen:?}");
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn garbage_instead_of_a_client_hello_closes_only_its_connection() {
    let pki = Pki::new();
    let broker = tls_broker(pki.server(), |_| {});
    let mut before = TlsClient::connect_ok(broker.addr, pki.client(None), Conn::new("before-garbage", V5));
    assert_eq!(before.subscribe("g/#", Q1), [ReasonCode(1)]);
    for garbage in
        [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T']]
    {
        let mut s = TcpStream::connect(broker.addr).unwrap();
        s.write_all(garbage).unwrap();
        let seen = read_until_closed(&mut s);
        assert!(seen.is_empty() || seen[0] == 0x15, "only an alert record may come back: {seen:?}");
    }
    let mut publisher = TlsClient::connect_ok(broker.addr, pki.client(None), Conn::new("after-garbage", V5));
    publisher.publish_q1("g/1", b"still here");
    match before.expect("PUBLISH") {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"still here"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[test]
fn a_reload_swaps_the_certificate_for_new_connections() {
    let pki = Pki::new();
    let tls = pki.server();
    let mut config = None;
    let broker = tls_broker(tls, |c| config = Some(c.clone()));
    let config = config.unwrap();
    let mut old = TlsClient::connect_ok(broker.addr, pki.client(None), Conn::new("reload-old", V5));
    // Another authority's certificate and key in the same files.
    let other = Pki::new();
    std::fs::copy(other.path("server.crt"), pki.path("server.crt")).unwrap();
    std::fs::copy(other.path("server.key"), pki.path("server.key")).unwrap();
    broker.broker().reload_tls(&config);
    TlsClient::connect_ok(broker.addr, other.client(None), Conn::new("reload-new", V5));
    let (_, got) = TlsClient::connect(broker.addr, pki.client(None), Conn::new("reload-stale", V5));
    assert!(refused_by_tls(&got), "the old CA's client still got in: {got:?}");
    // The connection made before the reload keeps working.
    assert_eq!(old.subscribe("r/#", Q1), [ReasonCode(1)]);
    // A key that does not load keeps the certificate in force.
    std::fs::write(pki.path("server.key"), "not a key\n").unwrap();
    broker.broker().reload_tls(&config);
    TlsClient::connect_ok(broker.addr, other.client(None), Conn::new("reload-kept", V5));
}

#[test]
fn a_bad_certificate_or_key_stops_the_broker_naming_the_file() {
    let pki = Pki::new();
    std::fs::write(pki.path("garbage.key"), "-----BEGIN PRIVATE KEY-----\nnot base64\n").unwrap();
    let cases = [
        (TlsOptions { certfile: Some(pki.path("missing.crt")), ..pki.server() }, "missing.crt"),
        (TlsOptions { keyfile: Some(pki.path("garbage.key")), ..pki.server() }, "garbage.key"),
        // A key that is not the certificate's.
        (TlsOptions { keyfile: Some(Pki::new().path("server.key")), ..pki.server() }, "server.key"),
        (TlsOptions { cafile: Some(pki.path("none.crt")), ..pki.mutual() }, "none.crt"),
    ];
    for (tls, file) in cases {
        let mut config = Config {
            listeners: vec![ringmq::config::ListenerConfig::on("127.0.0.1:0".parse().unwrap())],
            cores: 1,
            ..Config::default()
        };
        config.listeners[0].tls = tls;
        let e = ringmq::shard::Broker::start(config, 0).err().expect("the broker must not start").to_string();
        assert!(e.contains(file) && !e.contains('\n'), "{e}");
    }
}
