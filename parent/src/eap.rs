//! What ca needs to run EAP (RFC 7296 §2.16) for the policies with `eap`:
//! the method, and for a client (an active policy) the `user` it
//! authenticates as, named by its `srcid`. The users' passwords go to ca
//! with the configuration (`Config.users`), never to ikev2.

use iked_common::config::{Config, PolicyInitiation};
use iked_common::ipc::CaEapPolicy;

/// One entry per policy with `eap`, in file order. The parser has checked
/// that an active one has a srcid naming a `user` line.
pub fn eap_policies(config: &Config) -> Vec<CaEapPolicy> {
    config
        .policies
        .iter()
        .filter_map(|policy| {
            let method = policy.remote_access.eap?;
            let client_user = match policy.initiation {
                PolicyInitiation::Active => policy.srcid.as_ref().map(|id| id.to_string()),
                PolicyInitiation::Passive => None,
            };
            Some(CaEapPolicy {
                name: policy.name.clone(),
                method,
                client_user,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::config::{parse_str, EapMethod};

    #[test]
    fn gateways_and_clients_with_eap_reach_ca_with_the_client_user() {
        let config = parse_str(
            "t",
            "user \"alice@example.com\" \"alice-pw\"\n\
             user \"carol\" \"carol-pw\"\n\
             ikev2 \"gw\" passive from 10.1.0.0/16 to dynamic local 198.18.0.1 peer any \
             config address 10.9.0.0/24 srcid gw.example eap \"mschap-v2\"\n\
             ikev2 \"s2s\" active local 198.18.0.1 peer 198.18.0.9 psk \"k\"\n\
             ikev2 \"client\" active from dynamic to 10.2.0.0/16 peer 198.18.0.3 \
             srcid alice@example.com request address any eap \"mschap-v2\"\n\
             ikev2 \"fqdn\" active peer 198.18.0.4 srcid @carol eap \"mschap-v2\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            eap_policies(&config),
            vec![
                CaEapPolicy {
                    name: "gw".into(),
                    method: EapMethod::MsChapV2,
                    client_user: None,
                },
                CaEapPolicy {
                    name: "client".into(),
                    method: EapMethod::MsChapV2,
                    client_user: Some("alice@example.com".into()),
                },
                CaEapPolicy {
                    name: "fqdn".into(),
                    method: EapMethod::MsChapV2,
                    client_user: Some("carol".into()),
                },
            ]
        );
        assert_eq!(config.users.len(), 2);
    }
}
