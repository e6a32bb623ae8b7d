//! Who a client certificate names, for `use_identity_as_username` (the subject's Common
//! Name) and `use_subject_as_username` (the whole subject as OpenSSL prints it with
//! `XN_FLAG_RFC2253`, which is what Mosquitto puts in the user name).
//!
//! A small DER walk rather than an X.509 crate: rustls has already verified the
//! certificate, and only the subject is read (about a hundred lines, no dependency).

/// A DER element: its tag and contents.
struct Der<'a> {
    tag: u8,
    body: &'a [u8],
    /// The whole element, header included (for `#hex` dumps of unknown attributes).
    whole: &'a [u8],
}

/// Reads one element from the front of `input`, returning it and what follows.
fn next(input: &[u8]) -> Option<(Der<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((Der { tag, body: &rest[..len], whole: &input[..header + len] }, &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version`, present in v2 and v3 certificates.
const VERSION: u8 = 0xa0;
/// 2.5.4.3, commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject's RDNs, each a list of (attribute type OID, the value element).
type Subject<'a> = Vec<Vec<(&'a [u8], Der<'a>)>>;

/// The subject Name of a DER certificate.
fn subject(cert: &[u8]) -> Option<Subject<'_>> {
    let (certificate, _) = next(cert).filter(|(d, _)| d.tag == SEQUENCE)?;
    let (tbs, _) = next(certificate.body).filter(|(d, _)| d.tag == SEQUENCE)?;
    let mut rest = tbs.body;
    let (first, after) = next(rest)?;
    if first.tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer, validity; then subject.
    for _ in 0..4 {
        rest = next(rest)?.1;
    }
    let (name, _) = next(rest).filter(|(d, _)| d.tag == SEQUENCE)?;
    let mut rdns = Vec::new();
    let mut rest = name.body;
    while !rest.is_empty() {
        let (set, after) = next(rest).filter(|(d, _)| d.tag == SET)?;
        rest = after;
        let mut attributes = Vec::new();
        let mut inner = set.body;
        while !inner.is_empty() {
            let (pair, after) = next(inner).filter(|(d, _)| d.tag == SEQUENCE)?;
            inner = after;
            let (oid, after) = next(pair.body).filter(|(d, _)| d.tag == OID)?;
            let (value, _) = next(after)?;
            attributes.push((oid.body, value));
        }
        rdns.push(attributes);
    }
    Some(rdns)
}

/// The text of a directory string (UTF8String, PrintableString, IA5String, T61String as
/// Latin-1, BMPString, UniversalString); `None` for other types.
fn text(value: &Der<'_>) -> Option<String> {
    match value.tag {
        0x0c | 0x13 | 0x16 | 0x12 | 0x1a => std::str::from_utf8(value.body).ok().map(str::to_string),
        0x14 => Some(value.body.iter().map(|&b| b as char).collect()),
        0x1e => {
            let units: Vec<u16> =
                value.body.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        0x1c => value
            .body
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// The subject's Common Name (the first, as Mosquitto takes it); `None` without one.
pub fn common_name(cert: &[u8]) -> Option<String> {
    subject(cert)?.iter().flatten().find(|(oid, _)| *oid == COMMON_NAME).and_then(|(_, v)| text(v))
}

/// OpenSSL's short names for the attributes it knows by one (those seen in subjects).
fn short_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x04] => "SN",
        [0x55, 0x04, 0x2a] => "GN",
        [0x55, 0x04, 0x0c] => "title",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

/// An OID in dotted form.
fn dotted(oid: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let first = (value / 40).min(2);
                parts.push(first);
                parts.push(value - first * 40);
            } else {
                parts.push(value);
            }
            value = 0;
        }
    }
    parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// A value escaped as RFC 2253 with OpenSSL's flags: `,+"\<>;` always, `#` and space at
/// the start, space at the end, and control and non-ASCII bytes as `\XX`.
fn escape(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let edge = (i == 0 && (b == b'#' || b == b' ')) || (i == bytes.len() - 1 && b == b' ');
        if !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else if edge || b",+\"\\<>;".contains(&b) {
            out.push('\\');
            out.push(b as char);
        } else {
            out.push(b as char);
        }
    }
}

/// The subject as `X509_NAME_print_ex(..., XN_FLAG_RFC2253)` writes it: the last RDN
/// first, `,` between RDNs, `+` within one, unknown attributes as `OID=#hex` of the DER.
pub fn subject_rfc2253(cert: &[u8]) -> Option<String> {
    let rdns = subject(cert)?;
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, (oid, value)) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match (short_name(oid), text(value)) {
                (Some(name), Some(t)) => {
                    out.push_str(name);
                    out.push('=');
                    escape(&t, &mut out);
                }
                (name, _) => {
                    out.push_str(&name.map_or_else(|| dotted(oid), str::to_string));
                    out.push_str("=#");
                    for b in value.whole {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert(names: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in names {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_common_name() {
        let der = cert(&[(DnType::CountryName, "GB"), (DnType::CommonName, "sensor-7")]);
        assert_eq!(common_name(&der).as_deref(), Some("sensor-7"));
    }

    #[test]
    fn no_common_name_is_none() {
        assert_eq!(common_name(&cert(&[(DnType::OrganizationName, "Acme")])), None);
    }

    #[test]
    fn prints_the_subject_last_rdn_first_as_openssl_does() {
        let der = cert(&[
            (DnType::CountryName, "GB"),
            (DnType::OrganizationName, "Acme, Ltd"),
            (DnType::CommonName, " client+1"),
        ]);
        assert_eq!(subject_rfc2253(&der).as_deref(), Some("CN=\\ client\\+1,O=Acme\\, Ltd,C=GB"));
    }

    #[test]
    fn truncated_certificates_are_none() {
        let der = cert(&[(DnType::CommonName, "x")]);
        for cut in [0, 1, 10, der.len() / 2] {
            assert_eq!(common_name(&der[..cut]), None);
        }
    }

    #[test]
    fn dotted_oids() {
        assert_eq!(dotted(&[0x55, 0x04, 0x03]), "2.5.4.3");
        assert_eq!(dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]), "1.2.840.113549");
    }
}
