//! ca's side of the two-phase reload (parent/src/daemon/reload.rs).
//!
//! Prepare parses and checks the certificate store the parent read (ca is
//! the only process that parses those bytes) and keeps it, with the keys
//! and policies, aside; a store that does not load refuses the whole
//! reload, so no process switches to a configuration ca cannot serve.
//! Commit puts all of it in force at once.

use iked_common::config::{PreSharedKey, UserCredential};
use iked_common::ipc::{CaEapPolicy, CaPolicy, ChildConfig};

use crate::auth::AuthService;
use crate::store::CertStore;

/// A configuration ca has checked and not yet put in force. Its keys are
/// dropped (and zeroed, as their types do) if the reload is aborted.
pub struct PreparedCa {
    generation: u64,
    psks: Vec<(String, PreSharedKey)>,
    pubkey_policies: Vec<CaPolicy>,
    store: CertStore,
    eap_policies: Vec<CaEapPolicy>,
    users: Vec<UserCredential>,
}

impl std::fmt::Debug for PreparedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        write!(f, "PreparedCa(configuration {})", self.generation)
    }
}

/// Reload, phase one: parses the store and checks that every public-key
/// policy has what it signs with. Nothing in force changes.
pub fn prepare(config: ChildConfig) -> Result<PreparedCa, String> {
    let ChildConfig::Ca {
        generation,
        psks,
        pubkey_policies,
        store,
        eap_policies,
        users,
    } = config
    else {
        return Err("not a configuration for ca".into());
    };
    let parsed = CertStore::load(&store).map_err(|reason| {
        format!("certificate store of configuration {generation} refused: {reason}")
    })?;
    // The private key's bytes go now; only the parsed key stays.
    drop(store);
    Ok(PreparedCa {
        generation,
        psks,
        pubkey_policies,
        store: parsed,
        eap_policies,
        users,
    })
}

/// Reload, phase two: the prepared configuration in force.
pub fn commit(auth: &mut AuthService, prepared: PreparedCa) {
    let PreparedCa {
        generation,
        psks,
        pubkey_policies,
        store,
        eap_policies,
        users,
    } = prepared;
    auth.install(generation, psks, pubkey_policies, store);
    auth.apply_eap(eap_policies, users);
    log::debug!(
        "configuration {generation}: {} pre-shared keys, {} EAP users loaded",
        auth.key_count(),
        auth.eap().user_count()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::ipc::{CertStoreFiles, SecretStoreFile};

    fn config(generation: u64, store: CertStoreFiles) -> ChildConfig {
        ChildConfig::Ca {
            generation,
            psks: vec![("p".into(), PreSharedKey::new(b"secret".to_vec()))],
            pubkey_policies: vec![],
            store: Box::new(store),
            eap_policies: vec![],
            users: vec![],
        }
    }

    #[test]
    fn a_private_key_that_does_not_parse_refuses_the_configuration() {
        let store = CertStoreFiles {
            dir: "/etc/iked".into(),
            private_key: Some(SecretStoreFile {
                path: "/etc/iked/private/local.key".into(),
                bytes: b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
                    .to_vec(),
            }),
            ..Default::default()
        };
        let error = prepare(config(3, store)).unwrap_err();
        assert!(error.contains("configuration 3 refused"), "{error}");
        assert!(error.contains("local.key"), "{error}");
    }

    #[test]
    fn commit_puts_the_prepared_keys_in_force() {
        let mut auth = AuthService::default();
        assert_eq!(auth.key_count(), 0);
        let prepared = prepare(config(2, CertStoreFiles::default())).unwrap();
        assert_eq!(auth.key_count(), 0, "prepare changes nothing");
        commit(&mut auth, prepared);
        assert_eq!(auth.key_count(), 1);
    }

    #[test]
    fn refuses_others_configurations() {
        let pfkey = ChildConfig::Pfkey {
            generation: 2,
            flows: vec![],
            routing: Default::default(),
        };
        assert!(prepare(pfkey).is_err());
    }
}
