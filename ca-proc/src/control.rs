//! ca's answers to the operator (`ikectl show certstore`, `ikectl reset
//! ca`): what the store in force holds, as text fields ikectl prints.

use iked_common::ipc::{CaCommand, CertStoreInfo, CertificateInfo, ControlReply, CrlInfo};
use openssl::pkey::{HasPublic, PKeyRef};
use openssl::x509::X509Ref;

use crate::auth::AuthService;
use crate::store::identity::{name_text, san_texts};

pub fn answer(auth: &AuthService, command: CaCommand) -> ControlReply {
    match command {
        CaCommand::ShowCertStore => ControlReply::CertStore(Box::new(info(auth))),
        CaCommand::StoreStatus => match auth.store_refusal() {
            Some(reason) => ControlReply::Failed(reason.to_string()),
            None => ControlReply::Done(auth.store_summary()),
        },
    }
}

/// "RSA (3072 bits)", "ECDSA P-256", "Ed25519": the signature code's names.
pub fn key_type<T: HasPublic>(key: &PKeyRef<T>) -> String {
    match crate::signature::key_type(key) {
        Ok(kind) => kind.to_string(),
        Err(e) => e.to_string(),
    }
}

fn certificate(cert: &X509Ref, file: &str) -> CertificateInfo {
    CertificateInfo {
        file: file.to_string(),
        subject: name_text(cert.subject_name()),
        issuer: name_text(cert.issuer_name()),
        sans: san_texts(cert),
        serial: cert
            .serial_number()
            .to_bn()
            .ok()
            .and_then(|b| b.to_hex_str().ok().map(|s| s.to_string()))
            .unwrap_or_default(),
        not_before: cert.not_before().to_string(),
        not_after: cert.not_after().to_string(),
        key: cert
            .public_key()
            .map(|k| key_type(&k))
            .unwrap_or_else(|_| "unusable key".into()),
    }
}

fn info(auth: &AuthService) -> CertStoreInfo {
    let store = auth.store();
    CertStoreInfo {
        dir: store.dir.clone(),
        generation: auth.store_generation(),
        refusal: auth.store_refusal().map(str::to_string),
        cas: store
            .trusted
            .iter()
            .map(|ca| certificate(&ca.cert, &ca.file))
            .collect(),
        local_key: store.local.as_ref().map(|l| key_type(&l.key)),
        local_chain: store
            .local
            .iter()
            .flat_map(|l| l.chain.iter().zip(&l.chain_files))
            .map(|(c, file)| certificate(c, file))
            .collect(),
        other_certs: store
            .others
            .iter()
            .map(|(c, file)| certificate(c, file))
            .collect(),
        crls: store
            .crls
            .iter()
            .map(|c| CrlInfo {
                file: c.file.clone(),
                issuer: name_text(c.crl.issuer_name()),
                last_update: c.crl.last_update().to_string(),
                next_update: c.crl.next_update().map(|t| t.to_string()),
                revoked: c.crl.get_revoked().map_or(0, |r| r.len() as u64),
            })
            .collect(),
        raw_keys: store
            .raw_keys
            .iter()
            .map(|k| (k.identity.to_string(), key_type(&k.key), k.file.clone()))
            .collect(),
    }
}
