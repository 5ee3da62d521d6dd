//! The queue of requests an IKE SA is to make (window 1), the pump that
//! starts the next, and the hand-over of queued work to the IKE SA that
//! replaced it by rekeying (strongSwan's adopt_tasks).

use iked_common::wire::{Delete, ExchangeType, Payload, ProtocolId};

use crate::engine::Engine;

use crate::engine::message::abandon_request;
use crate::engine::state::*;

impl Engine {
    /// Starts the next queued request if the window is free.
    pub(super) fn pump(&mut self, spi: u64) {
        loop {
            let Some(sa) = self.ikes.get_mut(&spi) else {
                return;
            };
            if sa.outstanding.is_some() || sa.prep.is_some() {
                return;
            }
            if !matches!(sa.state, IkeState::Established | IkeState::Rekeyed) {
                return;
            }
            let Some(task) = sa.queue.pop_front() else {
                return;
            };
            if sa.state == IkeState::Rekeyed
                && task != Task::DeleteIke
                && !matches!(task, Task::DeleteChildren { .. })
            {
                // Child work belongs to the IKE SA that replaced this one.
                let successor = sa.successor;
                if let (Some(next), Task::RekeyChild { .. } | Task::CreateChild { .. }) =
                    (successor, &task)
                {
                    if let Some(next_sa) = self.ikes.get_mut(&next) {
                        if !next_sa.queue.contains(&task) {
                            next_sa.queue.push_back(task);
                        }
                    }
                    self.pump(next);
                    self.schedule(next);
                }
                continue;
            }
            match task {
                Task::Dpd => {
                    self.send_request(
                        spi,
                        ExchangeType::Informational,
                        Vec::new(),
                        RequestCtx::Dpd,
                    );
                }
                Task::DeleteIke => {
                    sa.state = IkeState::Deleting;
                    log::info!("policy {}: deleting IKE SA {spi:016x}", sa.policy);
                    self.send_ike_delete(spi);
                }
                Task::DeleteChildren { spis } => {
                    let present: Vec<u32> = spis
                        .into_iter()
                        .filter(|s| self.children.contains_key(s))
                        .collect();
                    if present.is_empty() {
                        continue;
                    }
                    for s in &present {
                        if let Some(c) = self.children.get_mut(s) {
                            c.state = ChildState::Deleting;
                        }
                    }
                    self.send_request(
                        spi,
                        ExchangeType::Informational,
                        vec![Payload::Delete(Delete {
                            protocol: ProtocolId::Esp,
                            spis: present.clone(),
                        })],
                        RequestCtx::DeleteChildren { spis: present },
                    );
                }
                Task::RekeyIke => self.send_rekey_ike(spi),
                Task::Mobike(task) => {
                    if !self.start_mobike_task(spi, task) {
                        continue;
                    }
                }
                Task::CreateChild { flow_index } => {
                    // Our own new Child SAs keep to the caps we impose.
                    if let Some(why) = self.child_cap_reached(spi, false) {
                        log::warn!("IKE SA {spi:016x}: not creating a Child SA for flow {flow_index}: {why}");
                        continue;
                    }
                    self.prepare_child(spi, flow_index, None);
                }
                Task::RekeyChild { spi_in } => {
                    let Some(child) = self.children.get(&spi_in) else {
                        continue;
                    };
                    if child.state != ChildState::Established {
                        continue;
                    }
                    let flow_index = child.flow_index;
                    self.prepare_child(spi, flow_index, Some(spi_in));
                }
            }
            return;
        }
    }

    pub(super) fn prepare_child(&mut self, spi: u64, flow_index: usize, rekey_of: Option<u32>) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        sa.prep = Some(Prep::CreateChild {
            flow_index,
            rekey_of,
        });
        let (peer, local) = (sa.peer.ip(), sa.local.ip());
        // A new Child SA gets its reqid with the answer; until then its
        // larval SA carries the larval one (marked as ours all the same).
        let reqid = rekey_of
            .and_then(|c| self.children.get(&c))
            .map_or(iked_common::kernel::LARVAL_REQID, |c| c.reqid);
        self.allocate_spi(spi, Wait::RequestSpi, peer, local, reqid);
    }

    /// An IKE SA replaced by a rekey goes away with Child SA work still
    /// pending on it (a DELETE or rekey of children that moved on): that
    /// work continues on the successor, where the children are now.
    pub(super) fn hand_over_child_work(&mut self, spi: u64) {
        let successor = self.current_ike(spi);
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        let mut tasks: Vec<Task> = sa
            .queue
            .drain(..)
            .filter(|t| {
                matches!(
                    t,
                    Task::DeleteChildren { .. }
                        | Task::RekeyChild { .. }
                        | Task::CreateChild { .. }
                )
            })
            .collect();
        let mut reset = Vec::new();
        match abandon_request(sa) {
            Some(RequestCtx::DeleteChildren { spis }) => {
                tasks.insert(0, Task::DeleteChildren { spis })
            }
            // Its SPI is released by delete_ike_local; the retry elsewhere
            // takes a new one.
            Some(RequestCtx::CreateChild { child }) => match child.rekey_of {
                Some(old) => {
                    reset.push(old);
                    tasks.push(Task::RekeyChild { spi_in: old });
                }
                None => tasks.push(Task::CreateChild {
                    flow_index: child.flow_index,
                }),
            },
            _ => {}
        }
        if successor == spi {
            // Nowhere to go: the children it still holds are removed with it.
            return;
        }
        for old in reset {
            if let Some(child) = self.children.get_mut(&old) {
                if child.state == ChildState::Rekeying {
                    child.state = ChildState::Established;
                }
            }
        }
        if let Some(next) = self.ikes.get_mut(&successor) {
            for task in tasks {
                if !next.queue.contains(&task) {
                    next.queue.push_back(task);
                }
            }
        }
        self.pump(successor);
        self.schedule(successor);
    }

    /// Deletes an IKE SA with the peer (INFORMATIONAL DELETE) when it is
    /// established, else locally.
    pub(super) fn request_delete_ike(&mut self, spi: u64) {
        let Some(sa) = self.ikes.get_mut(&spi) else {
            return;
        };
        if sa.out_cipher.is_none() || matches!(sa.state, IkeState::InitSent | IkeState::InitDone) {
            self.delete_ike_local(spi, "terminated");
            return;
        }
        if sa.queue.contains(&Task::DeleteIke) || sa.state == IkeState::Deleting {
            return;
        }
        // Deletion goes before anything else queued.
        sa.queue.retain(|t| matches!(t, Task::DeleteIke));
        sa.queue.push_front(Task::DeleteIke);
        self.pump(spi);
        self.schedule(spi);
    }
}
