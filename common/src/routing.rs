//! The routes pfkey installs for tunnel-mode Child SAs (`set routes`,
//! `set noroutes`, `set routing_table N`): one route per remote network,
//! in a routing table of our own that one rule makes the kernel consult
//! before the main table, so the main table is never touched and stopping
//! removes everything with one flush of that table (as strongSwan does with
//! its table 220).

use serde::{Deserialize, Serialize};

/// Our routing table unless `set routing_table` names another. strongSwan
/// uses 220; ours differs so that both can run on one host.
pub const DEFAULT_ROUTING_TABLE: u32 = 222;

/// The priority of the rule that sends lookups to our table: before the
/// main table (32766), after the local one (0).
pub const ROUTING_RULE_PRIORITY: u32 = 222;
const _: () = assert!(ROUTING_RULE_PRIORITY > 0 && ROUTING_RULE_PRIORITY < 32766);

/// What `set routes|noroutes` and `set routing_table` say.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSettings {
    /// Install routes for tunnel-mode Child SAs (the default).
    pub enabled: bool,
    /// The table they go to.
    pub table: u32,
}

impl Default for RouteSettings {
    fn default() -> Self {
        RouteSettings {
            enabled: true,
            table: DEFAULT_ROUTING_TABLE,
        }
    }
}

/// Whether `table` may hold our routes: not 0 (unspecified) and none of
/// the kernel's own tables (253 default, 254 main, 255 local).
pub fn is_usable_table(table: u32) -> bool {
    !matches!(table, 0 | 253..=255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_own_tables_are_not_ours_to_use() {
        for table in [0, 253, 254, 255] {
            assert!(!is_usable_table(table), "{table}");
        }
        for table in [1, 220, DEFAULT_ROUTING_TABLE, 252, 256, u32::MAX] {
            assert!(is_usable_table(table), "{table}");
        }
        assert!(RouteSettings::default().enabled);
    }
}
