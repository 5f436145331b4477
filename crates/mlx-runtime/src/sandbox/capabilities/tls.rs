//! TLS for outbound HTTP: the Mozilla roots (webpki-roots, so the worker does not depend on
//! the machine's trust store) plus any CA certificates the plugin's manifest adds for internal
//! services. Built once per manifest load, shared by every request of that plugin.

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

/// A client configuration; equal only to itself (a reload builds a new one).
#[derive(Debug, Clone)]
pub struct TlsClient(pub Arc<ClientConfig>);

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Trusts the Mozilla roots and the certificates in `extra_ca_files` (PEM). Errors name the
/// file and what is wrong with it.
pub fn client(extra_ca_files: &[impl AsRef<Path>]) -> Result<TlsClient, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    for file in extra_ca_files {
        let file = file.as_ref();
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: not a readable PEM file: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: holds no CERTIFICATE block", file.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a usable CA certificate: {e}", file.display()))?;
        }
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsClient(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.pem");
        std::fs::write(&file, "no pem here\n").unwrap();
        let err = client(&[&file]).unwrap_err();
        assert!(
            err.contains("empty.pem") && err.contains("no CERTIFICATE"),
            "{err}"
        );
        let missing = client(&[dir.path().join("missing.pem")]).unwrap_err();
        assert!(missing.contains("missing.pem"), "{missing}");
    }
}
