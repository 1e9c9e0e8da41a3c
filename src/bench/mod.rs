//! Benchmarks run against real local devnets.

pub mod propagation;
pub mod throughput;

/// The devnet directory for a bench: `dir` when given (kept afterwards), else a fresh temporary
/// directory removed when the returned guard drops.
pub fn work_dir(
    dir: &Option<std::path::PathBuf>,
) -> anyhow::Result<(std::path::PathBuf, Option<tempfile::TempDir>)> {
    Ok(match dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("meshnode-bench-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    })
}
