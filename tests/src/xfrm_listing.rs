//! Reading `ip xfrm state` and `ip xfrm policy` listings: what the kernel
//! holds, seen by iproute2 (an independent decoder), split into entries
//! and told ours (iked's reqids) from anyone else's.

use iked_common::kernel::reqid_is_ours;

/// The entries of a listing: each starts on a line that is not indented.
pub fn entries(listing: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in listing.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = out.last_mut() {
                last.push('\n');
                last.push_str(line);
            }
        } else if !line.trim().is_empty() {
            out.push(line.to_string());
        }
    }
    out
}

/// Whether a listed entry carries one of iked's reqids (our mark).
pub fn is_ours(entry: &str) -> bool {
    let words: Vec<&str> = entry.split_whitespace().collect();
    words
        .windows(2)
        .any(|w| w[0] == "reqid" && w[1].parse().is_ok_and(reqid_is_ours))
}

/// The entries of `listing` that are ours.
pub fn ours(listing: &str) -> Vec<String> {
    entries(listing)
        .into_iter()
        .filter(|e| is_ours(e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_split_into_entries_and_our_reqids_recognised() {
        let listing = "src 10.1.0.0/24 dst 10.2.0.0/24 \n\tdir out priority 1952 \n\ttmpl src 198.18.0.1 dst 198.18.0.2\n\t\tproto esp reqid 12289 mode tunnel\nsrc 192.0.2.0/24 dst 198.51.100.0/24 \n\tdir out priority 0 \n\ttmpl src 192.0.2.1 dst 198.51.100.1\n\t\tproto esp reqid 7 mode tunnel\n";
        let all = entries(listing);
        assert_eq!(all.len(), 2);
        assert!(is_ours(&all[0]));
        assert!(!is_ours(&all[1]));
        assert_eq!(ours(listing), vec![all[0].clone()]);
        let state = "src 198.18.0.1 dst 198.18.0.2\n\tproto esp spi 0xc0000001 reqid 12290 mode tunnel\n\treplay-window 0 flag af-unspec\n";
        assert_eq!(ours(state).len(), 1);
    }
}
