//! Test certificates: a CA and leaf certificates it signs, as PEM files.
#![allow(dead_code)]

use std::path::Path;

/// A CA and a certificate it signs for `names`, as PEM files in `dir` named `<tag>-*.pem`.
pub fn pki(dir: &Path, tag: &str, names: &[&str]) -> String {
    pki_leaves(dir, tag, &[("", names)]);
    tag.to_owned()
}

/// A CA (`<tag>-ca.pem`) and one certificate per leaf it signs: `<tag>-cert.pem` /
/// `<tag>-key.pem` for the leaf named "", `<tag>-<leaf>-cert.pem` / `-key.pem` for others.
pub fn pki_leaves(dir: &Path, tag: &str, leaves: &[(&str, &[&str])]) {
    pki_leaves_with(dir, tag, leaves, &[]);
}

/// [`pki_leaves`] where the leaves named in `without_cn` have no subject at all (their
/// names in subjectAltName only; rcgen gives the others a CommonName).
pub fn pki_leaves_with(dir: &Path, tag: &str, leaves: &[(&str, &[&str])], without_cn: &[&str]) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{tag} test CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join(format!("{tag}-ca.pem")), ca.pem()).unwrap();
    for (leaf, names) in leaves {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if without_cn.contains(leaf) {
            params.distinguished_name = rcgen::DistinguishedName::new();
        }
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let stem = match *leaf {
            "" => tag.to_owned(),
            leaf => format!("{tag}-{leaf}"),
        };
        std::fs::write(dir.join(format!("{stem}-cert.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}-key.pem")), key.serialize_pem()).unwrap();
    }
}

/// `[fabric]` lines for TLS with `<cert>-cert.pem`, `<cert>-key.pem`, `<ca>-ca.pem` and the
/// secret `fabric.key`.
pub fn tls_lines(cert: &str, ca: &str) -> String {
    format!(
        "encryption_enabled = true\ntls_cert = \"{cert}-cert.pem\"\ntls_key = \"{cert}-key.pem\"\ntls_ca = \"{ca}-ca.pem\"\nsecret_file = \"fabric.key\""
    )
}
