//! TLS listeners: rustls as a layer in the shard's byte path, on the shard's own loop.
//!
//! rustls has no I/O of its own (sans-IO): the event loop hands it what a receive
//! brought (`layer.rs`), it hands back plaintext for the connection's [`Input`] and
//! records to send, which go out through the socket's send buffer like any output. A
//! plain TCP connection has no layer and pays one branch per receive and per send.
//!
//! - `mod.rs`: each listener's rustls `ServerConfig`, built from Mosquitto's options
//!   (refusing what rustls cannot do, naming the file that does not load), behind the
//!   handle a reload swaps;
//! - `layer.rs`: one connection's TLS state, between its socket and its input;
//! - `handshakes.rs`: the threads a connection's handshake runs on, off the shard's loop;
//! - `identity.rs`: the client certificate's subject, for `use_identity_as_username`
//!   and `use_subject_as_username`.
//!
//! [`Input`]: super::input::Input

mod handshakes;
mod identity;
mod layer;

pub use handshakes::{Handshakes, Stepped};
pub use layer::TlsLayer;

use crate::config::{Config, ListenerConfig, TlsOptions, TlsVersion};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, RootCertStore, ServerConfig, SupportedProtocolVersion};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Which user name a client certificate gives the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// The CONNECT's user name and password, checked as on a plain listener.
    Connect,
    /// `use_identity_as_username`: the certificate's Common Name.
    CommonName,
    /// `use_subject_as_username`: the certificate's whole subject (RFC 2253).
    Subject,
}

/// Each listener's TLS: its rustls configuration (swapped whole by a reload) and where
/// user names come from.
#[derive(Default)]
pub struct TlsConfigs {
    /// Indexed as [`Config::bind_listeners`]; `None` for a plain listener.
    listeners: Vec<Option<Mutex<Arc<ServerConfig>>>>,
    identity: Vec<IdentitySource>,
}

impl TlsConfigs {
    /// Builds every TLS listener's configuration; all errors at once, one line each.
    pub fn load(config: &Config) -> Result<TlsConfigs, Vec<String>> {
        let mut errors = Vec::new();
        let mut configs = TlsConfigs::default();
        for l in &config.listeners {
            let built = l.tls.enabled().then(|| server_config(l)).transpose();
            configs.listeners.push(built.map_err(|e| errors.push(e)).ok().flatten().map(Mutex::new));
            configs.identity.push(identity_source(&l.tls));
        }
        if errors.is_empty() {
            Ok(configs)
        } else {
            Err(errors)
        }
    }

    /// The configuration new connections on listener `index` get; `None`: plain TCP.
    pub fn server_config(&self, index: u16) -> Option<Arc<ServerConfig>> {
        let slot = self.listeners.get(index as usize)?.as_ref()?;
        Some(slot.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Whether any listener speaks TLS (the handshake threads are started for it).
    pub fn any(&self) -> bool {
        self.listeners.iter().any(Option::is_some)
    }

    /// Where the user name of a client of listener `index` comes from.
    pub fn identity_source(&self, index: u16) -> IdentitySource {
        self.identity.get(index as usize).copied().unwrap_or(IdentitySource::Connect)
    }

    /// Puts reloaded certificates in place for the connections accepted from now on
    /// (those connected keep the session they negotiated). Listeners are matched by
    /// their order; one that was plain stays plain, and a TLS one stays TLS.
    pub fn replace(&self, reloaded: TlsConfigs) {
        for (slot, new) in self.listeners.iter().zip(reloaded.listeners) {
            if let (Some(slot), Some(new)) = (slot, new) {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) =
                    new.into_inner().unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

fn identity_source(tls: &TlsOptions) -> IdentitySource {
    if tls.use_identity_as_username {
        IdentitySource::CommonName
    } else if tls.use_subject_as_username {
        IdentitySource::Subject
    } else {
        IdentitySource::Connect
    }
}

/// One listener's rustls configuration, or the one-line reason it cannot be built.
fn server_config(l: &ListenerConfig) -> Result<Arc<ServerConfig>, String> {
    let at = l.origin.as_deref().map(|o| format!("{o}: ")).unwrap_or_default();
    let port = l.addrs.first().map_or(0, |a| a.port());
    let tls = &l.tls;
    let fail = |e: String| format!("{at}listener {port}: {e}");
    let (Some(certfile), Some(keyfile)) = (&tls.certfile, &tls.keyfile) else {
        return Err(fail("a TLS listener needs both certfile and keyfile".into()));
    };
    if tls.use_identity_as_username && tls.use_subject_as_username {
        return Err(fail("use_identity_as_username and use_subject_as_username exclude each other".into()));
    }
    if (tls.use_identity_as_username || tls.use_subject_as_username) && !tls.require_certificate {
        return Err(fail(
            "use_identity_as_username and use_subject_as_username need require_certificate true (without it no client certificate is asked for)".into(),
        ));
    }
    let certs = load_certs(certfile)
        .map_err(|e| fail(format!("Unable to load server certificate \"{}\": {e}", certfile.display())))?;
    let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
        fail(format!("Unable to load server key file \"{}\": {}", keyfile.display(), pem_error(&e)))
    })?;
    let provider = Arc::new(provider(tls).map_err(fail)?);
    let versions: &[&SupportedProtocolVersion] = match tls.tls_version {
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| fail(format!("ciphers and tls_version leave nothing to negotiate: {e}")))?;
    let builder = if tls.require_certificate {
        let roots = load_roots(tls).map_err(fail)?;
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if let Some(crlfile) = &tls.crlfile {
            let crls: Result<Vec<_>, _> = CertificateRevocationListDer::pem_file_iter(crlfile)
                .map_err(|e| pem_error(&e))
                .and_then(|it| it.collect::<Result<Vec<_>, _>>().map_err(|e| pem_error(&e)));
            let crls =
                crls.map_err(|e| fail(format!("Unable to load CRL file \"{}\": {e}", crlfile.display())))?;
            verifier = verifier.with_crls(crls);
        }
        let verifier = verifier.build().map_err(|e| fail(format!("client certificate checks: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        // As Mosquitto: without require_certificate no client certificate is asked for.
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        fail(format!(
            "certfile \"{}\" and keyfile \"{}\" do not go together: {e}",
            certfile.display(),
            keyfile.display()
        ))
    })?;
    Ok(Arc::new(config))
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind in it".into(),
        other => format!("{other:?}"),
    }
}

/// The certificates of a PEM file (at least one).
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&e))?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// The certificate authorities of `cafile` and every certificate file in `capath`.
fn load_roots(tls: &TlsOptions) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let mut add = |path: &Path, what: &str| -> Result<(), String> {
        let certs =
            load_certs(path).map_err(|e| format!("Unable to load {what} \"{}\": {e}", path.display()))?;
        for c in certs {
            roots.add(c).map_err(|e| format!("Unable to load {what} \"{}\": {e}", path.display()))?;
        }
        Ok(())
    };
    if let Some(cafile) = &tls.cafile {
        add(cafile, "CA certificates")?;
    }
    if let Some(capath) = &tls.capath {
        let dir = std::fs::read_dir(capath).map_err(|e| {
            format!("Unable to load CA certificates from capath \"{}\": {e}", capath.display())
        })?;
        let mut files: Vec<_> =
            dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for f in files {
            // OpenSSL's hashed directories hold certificates (and CRLs, `.r0`): take
            // whatever holds a certificate, skip the rest.
            if load_certs(&f).is_ok() {
                add(&f, "CA certificates")?;
            }
        }
    }
    if roots.is_empty() {
        return Err(
            "require_certificate needs the client certificates' authority: set cafile or capath".into()
        );
    }
    Ok(roots)
}

/// TLS 1.2 suites by OpenSSL's names (what Mosquitto's `ciphers` takes), and TLS 1.3
/// suites by their RFC 8446 names (`ciphers_tls1.3`): those rustls offers.
const TLS12_SUITES: &[(&str, CipherSuite)] = &[
    ("ECDHE-ECDSA-AES256-GCM-SHA384", CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ("ECDHE-ECDSA-AES128-GCM-SHA256", CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ("ECDHE-RSA-AES256-GCM-SHA384", CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ("ECDHE-RSA-AES128-GCM-SHA256", CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ("ECDHE-RSA-CHACHA20-POLY1305", CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
];
const TLS13_SUITES: &[(&str, CipherSuite)] = &[
    ("TLS_AES_256_GCM_SHA384", CipherSuite::TLS13_AES_256_GCM_SHA384),
    ("TLS_AES_128_GCM_SHA256", CipherSuite::TLS13_AES_128_GCM_SHA256),
    ("TLS_CHACHA20_POLY1305_SHA256", CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
];

/// rustls's ring provider, its suites narrowed to `ciphers` and `ciphers_tls1.3`.
fn provider(tls: &TlsOptions) -> Result<CryptoProvider, String> {
    // ring rather than aws-lc-rs (rustls's default): no C build step and no cmake, and
    // ring was already a dependency. rustls deprecates it for lacking post-quantum key
    // exchange (X25519MLKEM768), which Mosquitto's OpenSSL 3.0 lacks too.
    #[allow(deprecated)]
    let mut provider = ring::default_provider();
    let is13 = |s: CipherSuite| TLS13_SUITES.iter().any(|(_, c)| *c == s);
    let mut keep: Vec<CipherSuite> = Vec::new();
    match &tls.ciphers {
        Some(list) => keep.extend(suites("ciphers", list, TLS12_SUITES)?),
        None => keep.extend(TLS12_SUITES.iter().map(|(_, c)| *c)),
    }
    match &tls.ciphers_tls13 {
        Some(list) => keep.extend(suites("ciphers_tls1.3", list, TLS13_SUITES)?),
        None => keep.extend(TLS13_SUITES.iter().map(|(_, c)| *c)),
    }
    // The order given is the server's preference.
    provider.cipher_suites = keep
        .iter()
        .filter_map(|k| provider.cipher_suites.iter().find(|s| s.suite() == *k).copied())
        .collect();
    if tls.tls_version == Some(TlsVersion::Tls13) && !provider.cipher_suites.iter().any(|s| is13(s.suite())) {
        return Err("ciphers_tls1.3 leaves no TLS 1.3 suite".into());
    }
    Ok(provider)
}

/// The suites of a colon-separated list; an OpenSSL keyword (`HIGH`, `!aNULL`,
/// `@STRENGTH`) or a suite rustls does not offer is refused, naming those it does.
fn suites(option: &str, list: &str, known: &[(&str, CipherSuite)]) -> Result<Vec<CipherSuite>, String> {
    list.split([':', ',', ' '])
        .filter(|n| !n.is_empty())
        .map(|name| {
            known.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).ok_or_else(|| {
                let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                format!(
                    "{option}: '{name}' is not a suite rustls offers (OpenSSL cipher-string keywords are not understood); choose from {}",
                    names.join(":")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_lists_keep_their_order_and_refuse_openssl_keywords() {
        let got = suites("ciphers", "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256", TLS12_SUITES)
            .unwrap();
        assert_eq!(
            got,
            [
                CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
        let e = suites("ciphers", "HIGH:!aNULL", TLS12_SUITES).unwrap_err();
        assert!(e.contains("'HIGH'") && e.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{e}");
        assert!(suites("ciphers_tls1.3", "TLS_AES_128_CCM_SHA256", TLS13_SUITES).is_err());
    }

    #[test]
    fn tls13_only_with_no_tls13_suite_is_refused() {
        let tls = TlsOptions {
            tls_version: Some(TlsVersion::Tls13),
            ciphers_tls13: Some(String::new()),
            ..Default::default()
        };
        assert!(provider(&tls).unwrap_err().contains("no TLS 1.3 suite"));
    }

    #[test]
    fn a_missing_certificate_is_named() {
        let mut l = ListenerConfig::on("127.0.0.1:8883".parse().unwrap());
        l.tls.certfile = Some("/nonexistent/server.crt".into());
        l.tls.keyfile = Some("/nonexistent/server.key".into());
        let e = server_config(&l).unwrap_err();
        assert!(e.contains("listener 8883") && e.contains("\"/nonexistent/server.crt\""), "{e}");
    }
}
