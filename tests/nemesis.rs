//! `meshnode bench nemesis` end to end, short: a 4-node devnet under load while both fault
//! lanes run for 20 s (partitions, bootnode loss, SIGKILLs, spammers, damaged stores); the
//! bench exits non-zero unless every check passes (no accepted transaction lost, one head
//! within 10 s of the last fault, `store check` ok everywhere, every fault applied).

mod common;

#[test]
fn a_short_nemesis_run_passes_every_check() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nemesis.json");
    let genesis = concat!(env!("CARGO_MANIFEST_DIR"), "/genesis/devnet.json");
    let net = tmp.path().join("net");
    let (_, r) = common::bench(
        &[
            "nemesis",
            "--minutes",
            "0.34",
            "--nodes",
            "4",
            "--tps",
            "10",
            "--slot-ms",
            "500",
            "--genesis",
            genesis,
            "--dir",
            net.to_str().unwrap(),
        ],
        &out,
    );
    assert_eq!(r["passed"], true);
    assert_eq!(r["txs"]["lost"], 0);
    for kind in [
        "partition",
        "bootnodes-down",
        "kill",
        "spam",
        "damage-store",
    ] {
        assert!(
            r["counts"][kind].as_u64().unwrap_or(0) >= 1,
            "no {kind} fault injected: {}",
            r["counts"]
        );
    }
    assert!(tmp.path().join("nemesis.timeline.svg").exists());
}
