//! Events from outside the two engines' conversation: the clock, the
//! kernel, the operator and reloads.

use super::*;

impl World<'_> {
    /// Time passes: to the next deadline, a little, a lot, or not at all.
    pub(super) fn clock(&mut self) -> Result<(), Failure> {
        let next = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.next_deadline())
            .min();
        let step = match self.c.below(8) {
            0..=3 => next.map_or(Duration::from_secs(1), |t| {
                t.saturating_duration_since(self.now)
            }),
            4 => Duration::from_millis(self.c.below(3000) as u64),
            5 => Duration::from_secs(1 + self.c.below(120) as u64),
            6 => Duration::from_secs(self.c.below(4000) as u64),
            _ => Duration::ZERO,
        };
        self.now += step;
        let now = self.now;
        for index in 0..2 {
            if index == 0 || !self.c.chance(8) {
                self.nodes[index].engine.handle_timeout(now);
                self.executed();
                self.after(index)?;
            }
        }
        Ok(())
    }

    /// ACQUIRE, soft and hard EXPIRE (of a real SA or another), policy expiry.
    pub(super) fn kernel_event(&mut self) -> Result<(), Failure> {
        let index = self.c.below(2);
        let node = &self.nodes[index];
        let event = match self.c.below(4) {
            0 => {
                let src = IpAddr::V4(Ipv4Addr::new(10, 1 + index as u8, self.c.below(2) as u8, 7));
                let dst = IpAddr::V4(Ipv4Addr::new(10, 2 - index as u8, self.c.below(2) as u8, 9));
                KernelEvent::Acquire {
                    selector: Selector {
                        src,
                        src_prefix: 32,
                        dst,
                        dst_prefix: 32,
                        protocol: 0,
                        src_port: 0,
                        dst_port: 0,
                    },
                    src: node.addr,
                    dst: self.nodes[1 - index].addr,
                    reqid: self.c.below(8) as u32,
                    seq: self.c.below(100) as u32,
                }
            }
            1 | 2 => {
                let sa = if !node.installed.is_empty() && !self.c.chance(5) {
                    node.installed[self.c.below(node.installed.len())]
                } else {
                    SaId {
                        src: self.nodes[1 - index].addr,
                        dst: node.addr,
                        protocol: IpsecProtocol::Esp,
                        spi: self.c.u64() as u32,
                    }
                };
                KernelEvent::Expire {
                    sa,
                    reqid: self.c.below(8) as u32,
                    hard: self.c.chance(3),
                }
            }
            _ => KernelEvent::PolicyExpire {
                selector: flow([1, 0], [2, 0]),
                direction: [
                    PolicyDirection::In,
                    PolicyDirection::Out,
                    PolicyDirection::Fwd,
                ][self.c.below(3)],
                hard: self.c.chance(2),
            },
        };
        self.send_pfkey(index, PfkeyToIkev2::Event(event), false)
    }

    /// `ikectl show sa`, `initiate`, `terminate` (of our policy or another).
    pub(super) fn control(&mut self) -> Result<(), Failure> {
        let index = self.c.below(2);
        let policy = if self.c.chance(5) {
            "nonexistent".to_string()
        } else {
            self.nodes[index]
                .policies
                .first()
                .map_or_else(String::new, |p| p.name.clone())
        };
        let command = match self.c.below(3) {
            0 => ControlCommand::ShowSa,
            1 => ControlCommand::Initiate { policy },
            _ => ControlCommand::Terminate { policy },
        };
        let node = &mut self.nodes[index];
        let id = node.next_control;
        node.next_control += 1;
        let now = self.now;
        node.engine.handle_control(now, id, command);
        self.executed();
        self.after(index)
    }

    /// `ikectl reload`: the same configuration, a changed one, or none.
    pub(super) fn reload(&mut self) -> Result<(), Failure> {
        let index = self.c.below(2);
        let mut policies = self.nodes[index].policies.clone();
        match self.c.below(3) {
            0 => {}
            1 => {
                let mut s = self.shape;
                s.ike_lifetime = [0, 90, 900][self.c.below(3)];
                s.child_lifetime = [0, 40, 400][self.c.below(3)];
                if let Some(p) = policies.first_mut() {
                    p.ike_lifetime_secs = s.ike_lifetime;
                    p.child_lifetime_secs = s.child_lifetime;
                }
            }
            _ => policies.clear(),
        }
        let mode = if self.c.chance(4) {
            InitiationMode::Passive
        } else {
            self.nodes[index].mode
        };
        let now = self.now;
        self.nodes[index].engine.set_config(
            now,
            policies,
            mode,
            [0, self.shape.dpd, 10, 30][self.c.below(4)],
        );
        self.executed();
        self.after(index)
    }
}
