//! Certificates made by the tests with rcgen (self-signed), so the tests
//! need no OpenSSL of their own.

/// A self-signed certificate for `host` (and 127.0.0.1): (cert PEM, key PEM).
pub fn certificate(host: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    (certificate_for(host, &key), key.serialize_pem())
}

/// A self-signed certificate for `host` (and 127.0.0.1) with this key, as PEM.
pub fn certificate_for(host: &str, key: &rcgen::KeyPair) -> String {
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    params.self_signed(key).unwrap().pem()
}
