//! Compact one-line rendering of messages for logs, e.g.
//! `IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]`.

use std::fmt;

use super::payloads::Payload;
use super::Message;

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.header.exchange.short_name() {
            Some(name) => f.write_str(name)?,
            None => write!(f, "EXCHANGE({})", self.header.exchange.value())?,
        }
        let direction = if self.header.flags.response {
            "response"
        } else {
            "request"
        };
        write!(f, " {direction} {} [", self.header.message_id)?;
        for payload in &self.payloads {
            write!(f, " {payload}")?;
        }
        f.write_str(" ]")
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Notify(notify) => match notify.notify_type.short_name() {
                Some(name) => write!(f, "N({name})"),
                None => write!(f, "N({})", notify.notify_type.value()),
            },
            Payload::EncryptedFragment(skf) => {
                write!(f, "SKF({}/{})", skf.fragment_number, skf.total_fragments)
            }
            Payload::Unknown(unknown) => write!(f, "UNKNOWN({})", unknown.payload_type),
            other => f.write_str(other.payload_type().short_name().unwrap_or("?")),
        }
    }
}
