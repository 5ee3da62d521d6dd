//! The control socket: a UNIX SOCK_SEQPACKET socket, root-owned, mode 0660,
//! that ikectl talks to with typed requests. Input here is not trusted to be
//! well-formed: a bad request closes that connection, never the daemon.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use iked_common::ipc::{self, ControlReply, ControlRequest};
use nix::sys::socket::{
    accept4, bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};

pub struct ControlServer {
    pub path: PathBuf,
    pub listener: OwnedFd,
    clients: HashMap<u64, OwnedFd>,
    next_id: u64,
}

impl ControlServer {
    pub fn bind(path: &Path) -> Result<ControlServer, String> {
        let fail = |what: &str, e: nix::Error| {
            format!("control socket {}: {what}: {}", path.display(), e.desc())
        };
        let listener = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| fail("socket", e))?;
        // A stale socket from a previous run is replaced; anything else that
        // is not a socket is left alone.
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "control socket {}: exists and is not a socket",
                    path.display()
                ));
            }
            let _ = std::fs::remove_file(path);
        }
        let address = UnixAddr::new(path).map_err(|e| fail("address", e))?;
        // Created with no access for anyone, then opened to root's group.
        let old_mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = bind(std::os::fd::AsRawFd::as_raw_fd(&listener), &address);
        nix::sys::stat::umask(old_mask);
        bound.map_err(|e| fail("bind", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| format!("control socket {}: chmod: {e}", path.display()))?;
        listen(&listener, Backlog::new(16).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| fail("listen", e))?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            listener,
            clients: HashMap::new(),
            next_id: 0,
        })
    }

    /// Accepts one pending connection; returns its id.
    pub fn accept(&mut self) -> Option<(u64, &OwnedFd)> {
        let raw = accept4(
            std::os::fd::AsRawFd::as_raw_fd(&self.listener),
            SockFlag::SOCK_CLOEXEC,
        )
        .ok()?;
        // SAFETY: accept4 just returned this descriptor to us alone.
        let fd = unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) };
        self.next_id += 1;
        let id = self.next_id;
        self.clients.insert(id, fd);
        self.clients.get(&id).map(|fd| (id, fd))
    }

    /// Reads one request from client `id`; None closes the connection.
    pub fn read(&mut self, id: u64) -> Option<ControlRequest> {
        let fd = self.clients.get(&id)?;
        match ipc::recv::<ControlRequest>(fd.as_fd()).and_then(|r| r.expect_descriptors(0)) {
            Ok((request, _)) => Some(request),
            Err(ipc::IpcError::Closed) => {
                self.clients.remove(&id);
                None
            }
            Err(e) => {
                log::warn!("control connection {id}: {e}; closing it");
                self.clients.remove(&id);
                None
            }
        }
    }

    pub fn reply(&mut self, id: u64, reply: &ControlReply) {
        if let Some(fd) = self.clients.get(&id) {
            if let Err(e) = ipc::send(fd.as_fd(), reply, &[]) {
                log::debug!("control connection {id}: {e}");
                self.clients.remove(&id);
            }
        }
    }

    pub fn remove_socket_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
