#[path = "support/rw_pki.rs"]
mod rw_pki;
use iked_tests::lab::SwanKernel;
use iked_tests::roadwarrior::*;
use iked_tests::{in_kernel_lab, run_in_kernel_lab};

#[test]
#[ignore]
fn selfcheck_vm() {
    if !in_kernel_lab() {
        return run_in_kernel_lab("selfcheck_vm", 400);
    }
    iked_tests::lab::modprobe(&[
        "esp4",
        "xfrm_user",
        "xfrm4_tunnel",
        "veth",
        "bridge",
        "aes",
        "gcm",
        "sha256",
        "nf_tables",
        "nf_conntrack",
        "nf_nat",
        "nft_chain_nat",
        "nft_masq",
    ]);
    let net = RwNet::new("rwt14v", 2, 2);
    let pki = rw_pki::rw_pki();
    let users: Vec<User> = (0..4).map(User::lab).collect();
    let gw = start_strongswan_gateway(&net, &pki.gateway, &users, POOL, SwanKernel::Netlink);
    let clients: Vec<RwClient> = net
        .clients
        .iter()
        .zip(&users)
        .map(|(c, u)| {
            RwClient::start(
                c,
                ClientSpec::new(u.clone(), SwanKernel::Netlink),
                &pki.client_trust,
            )
        })
        .collect();
    for c in &clients {
        let (ok, out) = c.initiate();
        println!("{} ok={ok}", c.ns.ns);
        if !ok {
            println!("{out}\n{}", c.context());
        }
        let vip = c.virtual_ip();
        println!("vip {vip:?}");
        if let Some(vip) = vip {
            let out = RwNet::exec(
                &c.ns.ns,
                &[
                    "ping",
                    "-c",
                    "3",
                    "-i",
                    "0.2",
                    "-W",
                    "2",
                    "-I",
                    &vip.to_string(),
                    PROTECTED_HOST,
                ],
            );
            println!("PING {}", String::from_utf8_lossy(&out.stdout));
        }
    }
    println!("GW:\n{}", gw.list_sas());
    println!("STATES:\n{}", xfrm_states(&net.gw));
}
