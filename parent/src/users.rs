//! The users the children run as: one per role (common/src/privileges.rs),
//! looked up by the parent, which can read /etc/passwd. Two roles sharing a
//! uid or a gid could signal, ptrace or read each other's /proc entries, so
//! that is refused like a missing user.

use iked_common::ipc::Role;
use iked_common::privileges::{create_user_command, user_of};

/// The roles that run confined, in start order.
const CONFINED: [Role; 3] = [Role::Ikev2, Role::Pfkey, Role::Ca];

/// A child's uid and gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// The ids of every confined role.
#[derive(Debug, Clone)]
pub struct RoleUsers(Vec<(Role, &'static str, Ids)>);

impl RoleUsers {
    /// Looks up each role's user; names the first one missing, with the
    /// command that creates it.
    pub fn resolve() -> Result<RoleUsers, String> {
        Self::resolve_with(|name| {
            nix::unistd::User::from_name(name)
                .map_err(|e| format!("cannot look up user {name}: {e}"))
                .map(|user| {
                    user.map(|u| Ids {
                        uid: u.uid.as_raw(),
                        gid: u.gid.as_raw(),
                    })
                })
        })
    }

    fn resolve_with(
        lookup: impl Fn(&str) -> Result<Option<Ids>, String>,
    ) -> Result<RoleUsers, String> {
        let mut users: Vec<(Role, &'static str, Ids)> = Vec::new();
        for role in CONFINED {
            let Some(name) = user_of(role) else {
                return Err(format!("the privilege table names no user for {role}"));
            };
            let ids = lookup(name)?.ok_or_else(|| {
                format!(
                    "user {name} (for the {role} process) does not exist; create it with: {}",
                    create_user_command(name)
                )
            })?;
            if ids.uid == 0 || ids.gid == 0 {
                return Err(format!(
                    "user {name} (for the {role} process) must not have uid or gid 0"
                ));
            }
            for (other_role, other, other_ids) in &users {
                if ids.uid == other_ids.uid {
                    return Err(format!(
                        "users {other} ({other_role}) and {name} ({role}) share uid {}: \
                         each child needs a uid of its own",
                        ids.uid
                    ));
                }
                if ids.gid == other_ids.gid {
                    return Err(format!(
                        "users {other} ({other_role}) and {name} ({role}) share gid {}: \
                         each child needs a group of its own",
                        ids.gid
                    ));
                }
            }
            users.push((role, name, ids));
        }
        Ok(RoleUsers(users))
    }

    /// The ids `role` runs as.
    pub fn of(&self, role: Role) -> Result<Ids, String> {
        self.0
            .iter()
            .find(|(r, _, _)| *r == role)
            .map(|(_, _, ids)| *ids)
            .ok_or_else(|| format!("no user for the {role} process"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Lookup = Box<dyn Fn(&str) -> Result<Option<Ids>, String>>;

    fn table(entries: &[(&'static str, u32, u32)]) -> Lookup {
        let entries = entries.to_vec();
        Box::new(move |name| {
            Ok(entries
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, uid, gid)| Ids {
                    uid: *uid,
                    gid: *gid,
                }))
        })
    }

    #[test]
    fn each_role_gets_its_own_ids() {
        let users = RoleUsers::resolve_with(table(&[
            ("_iked", 901, 901),
            ("_iked_pfkey", 902, 902),
            ("_iked_ca", 903, 903),
        ]))
        .unwrap();
        assert_eq!(users.of(Role::Pfkey).unwrap(), Ids { uid: 902, gid: 902 });
        assert_eq!(users.of(Role::Ca).unwrap(), Ids { uid: 903, gid: 903 });
        assert!(users.of(Role::Parent).is_err());
    }

    #[test]
    fn a_missing_user_is_named_with_the_command_that_creates_it() {
        let e = RoleUsers::resolve_with(table(&[("_iked", 901, 901), ("_iked_ca", 903, 903)]))
            .unwrap_err();
        assert_eq!(
            e,
            "user _iked_pfkey (for the pfkey process) does not exist; create it with: \
             useradd --system --user-group --home-dir /var/empty --shell /usr/sbin/nologin _iked_pfkey"
        );
    }

    #[test]
    fn shared_or_root_ids_are_refused() {
        let e = RoleUsers::resolve_with(table(&[
            ("_iked", 901, 901),
            ("_iked_pfkey", 901, 902),
            ("_iked_ca", 903, 903),
        ]))
        .unwrap_err();
        assert!(
            e.contains("_iked (ikev2) and _iked_pfkey (pfkey) share uid 901"),
            "{e}"
        );
        let e = RoleUsers::resolve_with(table(&[
            ("_iked", 901, 901),
            ("_iked_pfkey", 902, 902),
            ("_iked_ca", 903, 901),
        ]))
        .unwrap_err();
        assert!(e.contains("share gid 901"), "{e}");
        let e = RoleUsers::resolve_with(table(&[
            ("_iked", 901, 0),
            ("_iked_pfkey", 902, 902),
            ("_iked_ca", 903, 903),
        ]))
        .unwrap_err();
        assert!(e.contains("must not have uid or gid 0"), "{e}");
    }
}
