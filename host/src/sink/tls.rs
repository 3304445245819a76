//! The TLS client settings of `https://` sinks: rustls, trusting Mozilla's roots
//! (webpki-roots, built in, so a static image needs no CA bundle), the system's roots where
//! there are any, and the PEM certificates of `K_CA_CERTS`, as Knative's SinkBinding
//! injects them for transport encryption. Parses; never connects.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// A client config trusting the usual roots and `extra_pem` (PEM text, any number of
/// certificates); an `extra_pem` holding no valid certificate is refused.
pub fn client_config(extra_pem: Option<&str>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot use is skipped, as browsers skip it.
        let _ = roots.add(cert);
    }
    if let Some(pem) = extra_pem.filter(|p| !p.trim().is_empty()) {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("not PEM certificates ({e})"))?;
            roots
                .add(cert)
                .map_err(|e| format!("an unusable CA certificate ({e})"))?;
            added += 1;
        }
        if added == 0 {
            return Err("no PEM certificate in it".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Whether `error` (a failed request) failed verifying the sink's certificate or another
/// TLS rule: retrying cannot help, and the reason is what the caller needs to see.
pub fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// `error` and its causes, joined: hyper's own message hides the TLS reason in a source.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_certificates_must_be_pem() {
        assert!(client_config(None).is_ok());
        assert!(client_config(Some("")).is_ok());
        assert!(client_config(Some("not a certificate")).is_err());
        assert!(
            client_config(Some(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            ))
            .is_err()
        );
    }
}
