//! Operator commands for pfkey: `ikectl show flows` (the kernel entries we
//! installed) and `ikectl couple|decouple` (OpenBSD ikectl(8): our IPsec
//! policies taken out of the kernel, or put back, while the SAs stay).
//!
//! Decoupled, the policies we removed are held here with their templates;
//! policies ikev2 adds meanwhile are held too (answered as done), and one
//! ikev2 deletes is dropped from the hold. `couple` reinstalls what is held
//! through the same checks as an add from ikev2 (flows, reqid, lease), so a
//! policy that a reload has made stale is refused then, not reinstalled.

use std::collections::HashMap;

use iked_common::ipc::{
    ChildToParent, ControlReply, FlowPolicyInfo, FlowSaInfo, FlowsInfo, Ikev2ToPfkey, PfkeyCommand,
    PfkeyToIkev2, MAX_FLOWS_LISTED,
};
use iked_common::kernel::{
    IpsecMode, IpsecProtocol, KernelEntry, KernelSocketKind, PolicyDirection, PolicyParams,
    SaTemplate, Selector,
};

use super::{Outcome, PfkeyService};

/// Our policies held out of the kernel; None while coupled (the start).
#[derive(Debug, Default)]
pub struct Coupling {
    held: Option<HashMap<(Selector, PolicyDirection), PolicyParams>>,
}

fn direction_name(direction: PolicyDirection) -> &'static str {
    match direction {
        PolicyDirection::In => "in",
        PolicyDirection::Out => "out",
        PolicyDirection::Fwd => "fwd",
    }
}

fn mode_name(mode: IpsecMode) -> String {
    match mode {
        IpsecMode::Tunnel => "tunnel".into(),
        IpsecMode::Transport => "transport".into(),
    }
}

fn protocol_name(protocol: IpsecProtocol) -> String {
    match protocol {
        IpsecProtocol::Esp => "esp".into(),
    }
}

impl PfkeyService {
    /// One operator command; the reply rides in the outcome to the parent,
    /// after the entry reports it caused.
    pub fn control(&mut self, id: u64, command: PfkeyCommand) -> Outcome {
        let mut outcome = Outcome::default();
        let reply = match command {
            PfkeyCommand::ShowFlows => ControlReply::Flows(Box::new(self.flows_info())),
            PfkeyCommand::Couple(true) => self.couple(&mut outcome),
            PfkeyCommand::Couple(false) => self.decouple(&mut outcome),
        };
        outcome
            .to_parent
            .push(ChildToParent::ControlResult { id, reply });
        outcome
    }

    /// While decoupled, ikev2's policy requests are answered from the hold
    /// (None: handle the request as usual).
    pub(super) fn while_decoupled(&mut self, request: &Ikev2ToPfkey) -> Option<Outcome> {
        let held = self.coupling.held.as_mut()?;
        let reply = match request {
            Ikev2ToPfkey::AddPolicy { id, policy } => {
                if held.len() >= super::MAX_INSTALLED {
                    return None;
                }
                held.insert((policy.selector, policy.direction), *policy);
                PfkeyToIkev2::Done { id: *id }
            }
            Ikev2ToPfkey::DeletePolicy {
                id,
                selector,
                direction,
            } => {
                held.remove(&(*selector, *direction))?;
                PfkeyToIkev2::Done { id: *id }
            }
            _ => return None,
        };
        Some(Outcome {
            to_ikev2: vec![reply],
            to_parent: Vec::new(),
        })
    }

    fn flows_info(&mut self) -> FlowsInfo {
        let mut policies: Vec<FlowPolicyInfo> = Vec::new();
        let mut sas: Vec<FlowSaInfo> = Vec::new();
        let mut policies_total = 0u64;
        let mut sas_total = 0u64;
        // Templates of installed policies are not kept; the dump has them.
        let templates = self.templates_of_ours();
        for entry in &self.installed {
            match entry {
                KernelEntry::Policy {
                    selector,
                    direction,
                } => {
                    policies_total += 1;
                    if policies.len() < MAX_FLOWS_LISTED {
                        let template = templates.get(&(*selector, *direction));
                        policies.push(FlowPolicyInfo {
                            selector: selector.to_string(),
                            direction: direction_name(*direction).into(),
                            src: template.map(|t| t.src),
                            dst: template.map(|t| t.dst),
                            reqid: template.map(|t| t.reqid),
                            mode: template.map(|t| mode_name(t.mode)),
                            in_kernel: true,
                        });
                    }
                }
                KernelEntry::Sa(id) => {
                    sas_total += 1;
                    if sas.len() < MAX_FLOWS_LISTED {
                        sas.push(FlowSaInfo {
                            src: Some(id.src),
                            dst: Some(id.dst),
                            protocol: protocol_name(id.protocol),
                            spi: format!("{:08x}", id.spi),
                            policy: self.sa_policy.get(id).cloned(),
                        });
                    }
                }
            }
        }
        for params in self.coupling.held.iter().flat_map(|h| h.values()) {
            policies_total += 1;
            if policies.len() < MAX_FLOWS_LISTED {
                policies.push(FlowPolicyInfo {
                    selector: params.selector.to_string(),
                    direction: direction_name(params.direction).into(),
                    src: Some(params.template.src),
                    dst: Some(params.template.dst),
                    reqid: Some(params.template.reqid),
                    mode: Some(mode_name(params.template.mode)),
                    in_kernel: false,
                });
            }
        }
        // A stable order for operators and tests (the sets are unordered).
        policies.sort_by(|a, b| {
            (&a.selector, &a.direction, a.in_kernel).cmp(&(&b.selector, &b.direction, b.in_kernel))
        });
        sas.sort_by(|a, b| (a.src, a.dst, &a.spi).cmp(&(b.src, b.dst, &b.spi)));
        FlowsInfo {
            kernel: match self.kind() {
                KernelSocketKind::Xfrm => "xfrm".into(),
                KernelSocketKind::Pfkey => "pfkey".into(),
            },
            coupled: self.coupling.held.is_none(),
            policies,
            policies_total,
            sas,
            sas_total,
        }
    }

    /// The templates of our installed policies, from a kernel dump (empty
    /// when the kernel cannot be asked: the listing goes without them).
    fn templates_of_ours(&mut self) -> HashMap<(Selector, PolicyDirection), SaTemplate> {
        match self.backend.dump_policies() {
            Ok(dumped) => dumped
                .into_iter()
                .filter_map(|p| p.template.map(|t| ((p.selector, p.direction), t)))
                .filter(|(key, _)| {
                    self.installed.contains(&KernelEntry::Policy {
                        selector: key.0,
                        direction: key.1,
                    })
                })
                .collect(),
            Err(failure) => {
                log::warn!(
                    "show flows: cannot list the kernel's policies: {}",
                    failure.message
                );
                HashMap::new()
            }
        }
    }

    /// `ikectl decouple`: our policies out of the kernel, held here.
    fn decouple(&mut self, outcome: &mut Outcome) -> ControlReply {
        if self.coupling.held.is_some() {
            return ControlReply::Done("already decoupled".into());
        }
        let dumped = match self.backend.dump_policies() {
            Ok(dumped) => dumped,
            Err(failure) => {
                return ControlReply::Failed(format!(
                    "decouple: cannot list the kernel's policies: {}",
                    failure.message
                ))
            }
        };
        let mut held = HashMap::new();
        let mut failures = Vec::new();
        for policy in dumped {
            let entry = KernelEntry::Policy {
                selector: policy.selector,
                direction: policy.direction,
            };
            let Some(template) = policy.template else {
                continue;
            };
            if !self.installed.contains(&entry) {
                continue;
            }
            match self.remove_entry(&entry, outcome) {
                None => {
                    held.insert(
                        (policy.selector, policy.direction),
                        PolicyParams {
                            selector: policy.selector,
                            direction: policy.direction,
                            priority: policy.priority,
                            template,
                        },
                    );
                }
                Some(failure) => failures.push(format!("{entry}: {}", failure.message)),
            }
        }
        let count = held.len();
        self.coupling.held = Some(held);
        log::info!("decoupled: {count} IPsec policies of ours taken out of the kernel");
        if failures.is_empty() {
            ControlReply::Done(format!(
                "decoupled: {count} policies removed from the kernel, SAs stay"
            ))
        } else {
            ControlReply::Failed(format!(
                "decoupled {count} policies, but could not remove {}: {}",
                failures.len(),
                failures.join("; ")
            ))
        }
    }

    /// `ikectl couple`: the held policies back into the kernel.
    fn couple(&mut self, outcome: &mut Outcome) -> ControlReply {
        let Some(held) = self.coupling.held.take() else {
            return ControlReply::Done("already coupled".into());
        };
        let mut held: Vec<PolicyParams> = held.into_values().collect();
        // Out before in and fwd, each in selector order: a stable order.
        held.sort_by_key(|p| (p.direction != PolicyDirection::Out, p.selector.to_string()));
        let mut installed = 0usize;
        let mut failures = Vec::new();
        for policy in held {
            // id 0: the reply to ikev2 is not sent; only its verdict counts.
            let added = self.handle_request(Ikev2ToPfkey::AddPolicy { id: 0, policy });
            outcome.to_parent.extend(added.to_parent);
            match added.to_ikev2.first() {
                Some(PfkeyToIkev2::Done { .. }) => installed += 1,
                Some(PfkeyToIkev2::Failed { failure, .. }) => failures.push(format!(
                    "policy {} dir {}: {}",
                    policy.selector,
                    direction_name(policy.direction),
                    failure.message
                )),
                _ => failures.push(format!("policy {}: no answer", policy.selector)),
            }
        }
        log::info!("coupled: {installed} IPsec policies of ours back in the kernel");
        if failures.is_empty() {
            ControlReply::Done(format!(
                "coupled: {installed} policies installed in the kernel"
            ))
        } else {
            ControlReply::Failed(format!(
                "coupled {installed} policies, but {} were refused: {}",
                failures.len(),
                failures.join("; ")
            ))
        }
    }
}
