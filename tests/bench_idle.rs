//! Where the nodes' CPU goes, end to end and small: `meshnode bench idle` (four nodes, one
//! empty block per slot) and `meshnode bench propagation` (four nodes under load) report the
//! cores they used and where they went, thread by thread (the runtime, block validation,
//! transaction validation, sled's I/O pool), with each thread kind's wake-ups.

mod common;

#[test]
fn bench_idle_reports_the_cores_and_where_they_went() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("idle.json");
    let genesis = concat!(env!("CARGO_MANIFEST_DIR"), "/genesis/devnet.json");
    let (stdout, r) = common::bench(
        &[
            "idle",
            "--nodes",
            "4",
            "--seconds",
            "6",
            "--genesis",
            genesis,
        ],
        &out,
    );
    assert!(stdout.contains("where it went"), "{stdout}");
    assert_eq!(r["nodes"], 4);
    assert_eq!(r["blocks"], true);
    let cores = r["cores"].as_f64().unwrap();
    assert!(cores > 0.0 && cores < 2.0, "{r}");
    let threads = r["threads"].as_array().expect("a per-thread breakdown");
    let kind = |name: &str| {
        threads
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} threads in {r}"))
    };
    // Every node has one runtime thread (`devnet` starts them with --worker-threads 1 when
    // there are more nodes than cores) or one per core, and a block validation thread that
    // wakes for every block.
    let rt = kind("tokio-rt-worker");
    assert!(rt["threads"].as_u64().unwrap() >= 4, "{rt}");
    assert!(rt["wakeups_per_node_per_s"].as_f64().unwrap() > 1.0, "{rt}");
    let bv = kind("block-validatio");
    assert_eq!(bv["threads"], 4, "{bv}");
    assert!(bv["wakeups_per_node_per_s"].as_f64().unwrap() > 0.3, "{bv}");
    assert_eq!(kind("main")["threads"], 4);
    // The groups add up to no more than the processes' total (threads that started or ended
    // between the readings are left out), give or take a clock tick per thread.
    let n: u64 = threads.iter().map(|t| t["threads"].as_u64().unwrap()).sum();
    let sum: f64 = threads.iter().map(|t| t["cores"].as_f64().unwrap()).sum();
    let secs = r["seconds"].as_f64().unwrap();
    assert!(
        sum <= cores + n as f64 * 0.01 / secs + 1e-9,
        "{sum} > {cores}: {r}"
    );
}

#[test]
fn bench_propagation_reports_where_the_cpu_went() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("propagation.json");
    let genesis = concat!(env!("CARGO_MANIFEST_DIR"), "/genesis/devnet.json");
    let (stdout, r) = common::bench(
        &[
            "propagation",
            "--nodes",
            "4",
            "--blocks",
            "3",
            "--tps",
            "40",
            "--genesis",
            genesis,
        ],
        &out,
    );
    assert!(stdout.contains("where it went"), "{stdout}");
    let m = &r["machine"];
    let threads = m["threads"].as_array().expect("a per-thread breakdown");
    let kind = |name: &str| {
        threads
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} threads in {m}"))
    };
    // Under load every node's runtime, block validation and transaction validation threads
    // did work; the groups add up to no more than the processes' total.
    assert!(
        kind("tokio-rt-worker")["cores"].as_f64().unwrap() > 0.0,
        "{m}"
    );
    assert_eq!(kind("block-validatio")["threads"], 4, "{m}");
    let tx = kind("tx-validation");
    assert_eq!(tx["threads"], 4, "{m}");
    assert!(tx["wakeups_per_node_per_s"].as_f64().unwrap() > 0.0, "{tx}");
    let n: u64 = threads.iter().map(|t| t["threads"].as_u64().unwrap()).sum();
    let sum: f64 = threads.iter().map(|t| t["cores"].as_f64().unwrap()).sum();
    let cores = m["node_cores"].as_f64().unwrap();
    assert!(
        sum > 0.0 && sum <= cores + n as f64 * 0.01,
        "{sum} vs {cores}: {m}"
    );
}
