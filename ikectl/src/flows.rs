//! `ikectl show flows` as text: the kernel policies and SAs iked installed.

use iked_common::ipc::FlowsInfo;

pub fn render(info: &FlowsInfo) -> String {
    let mut out = format!(
        "kernel {}, {}\n",
        info.kernel,
        if info.coupled {
            "coupled"
        } else {
            "decoupled (policies held, not in the kernel)"
        }
    );
    out += &format!("policies: {}\n", info.policies_total);
    for p in &info.policies {
        let template = match (p.src, p.dst, &p.mode, p.reqid) {
            (Some(src), Some(dst), Some(mode), Some(reqid)) => {
                format!(" {mode} {src} -> {dst} reqid {reqid}")
            }
            _ => String::new(),
        };
        out += &format!(
            "  {} dir {}{template}{}\n",
            p.selector,
            p.direction,
            if p.in_kernel { "" } else { " (held)" }
        );
    }
    if (info.policies.len() as u64) < info.policies_total {
        out += &format!(
            "  (showing {} of {})\n",
            info.policies.len(),
            info.policies_total
        );
    }
    out += &format!("sas: {}\n", info.sas_total);
    for sa in &info.sas {
        let endpoints = match (sa.src, sa.dst) {
            (Some(src), Some(dst)) => format!("{src} -> {dst}"),
            _ => "?".into(),
        };
        out += &format!(
            "  {} spi {} {endpoints} {}\n",
            sa.protocol,
            sa.spi,
            match &sa.policy {
                Some(policy) => format!("policy {policy}"),
                None => "larval".into(),
            }
        );
    }
    if (info.sas.len() as u64) < info.sas_total {
        out += &format!("  (showing {} of {})\n", info.sas.len(), info.sas_total);
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iked_common::ipc::{FlowPolicyInfo, FlowSaInfo};

    #[test]
    fn policies_and_sas_are_listed_with_the_coupling() {
        let info = FlowsInfo {
            kernel: "xfrm".into(),
            coupled: false,
            policies: vec![FlowPolicyInfo {
                selector: "10.1.0.0/16 -> 10.2.0.0/16".into(),
                direction: "out".into(),
                src: Some("198.18.0.1".parse().unwrap()),
                dst: Some("198.18.0.2".parse().unwrap()),
                reqid: Some(7),
                mode: Some("tunnel".into()),
                in_kernel: false,
            }],
            policies_total: 1,
            sas: vec![FlowSaInfo {
                src: Some("198.18.0.1".parse().unwrap()),
                dst: Some("198.18.0.2".parse().unwrap()),
                protocol: "esp".into(),
                spi: "c0ffee01".into(),
                policy: Some("site".into()),
            }],
            sas_total: 3,
        };
        let text = render(&info);
        assert!(text.starts_with("kernel xfrm, decoupled"), "{text}");
        assert!(
            text.contains(
                "  10.1.0.0/16 -> 10.2.0.0/16 dir out tunnel 198.18.0.1 -> 198.18.0.2 reqid 7 (held)"
            ),
            "{text}"
        );
        assert!(
            text.contains("  esp spi c0ffee01 198.18.0.1 -> 198.18.0.2 policy site"),
            "{text}"
        );
        assert!(text.contains("(showing 1 of 3)"), "{text}");
    }
}
