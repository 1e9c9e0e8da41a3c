//! `meshnode bench scale` end to end, small: two sizes on the `wan` link profile, every block
//! reaching every node at each, the profile named in the report, each size's hop bound and
//! t100 ÷ hop bound given, and the scale curve drawn.

mod common;

#[test]
fn bench_scale_runs_every_size_on_a_link_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("scale.json");
    let genesis = concat!(env!("CARGO_MANIFEST_DIR"), "/genesis/devnet.json");
    let net = tmp.path().join("net");
    let (stdout, r) = common::bench(
        &[
            "scale",
            "--nodes",
            "3,5",
            "--blocks",
            "3",
            "--tps",
            "5",
            "--profile",
            "wan",
            "--genesis",
            genesis,
            "--dir",
            net.to_str().unwrap(),
        ],
        &out,
    );
    assert!(
        stdout.contains("== 3 nodes, link profile wan"),
        "each size names its profile"
    );
    assert_eq!(r["profile"], "wan");
    let sizes = r["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    for (s, n) in sizes.iter().zip([3, 5]) {
        assert_eq!(s["nodes"], n);
        assert!(s["error"].is_null(), "{n} nodes failed: {}", s["error"]);
        assert_eq!(s["blocks"], 3, "{n} nodes: {s}");
        assert_eq!(s["blocks_reaching_all"], 3, "{n} nodes: {s}");
        let t100 = s["t100_ms"]["p95"].as_f64().unwrap();
        let bound = s["hop_bound_ms"]["p95"].as_f64().unwrap();
        // The bound holds the links' one-way delays (wan: at least 2 ms a hop), and nothing
        // reaches every node faster than its delivery tree allows.
        assert!(bound >= 2.0, "{n} nodes: hop bound {bound} ms");
        assert!(
            t100 >= bound * 0.8,
            "{n} nodes: t100 {t100} < bound {bound}"
        );
        assert!(s["t100_over_hop_bound"]["p95"].as_f64().unwrap() >= 0.8);
    }
    assert!(sizes[0]["t100_p95_ratio"].as_f64().unwrap() == 1.0);
    assert!(tmp.path().join("scale.curve.svg").exists());
    assert!(tmp.path().join("scale.curve.png").exists());
}
