//! The `meshnode` binary: parse the CLI, set up tracing, run the subcommand, map errors to an
//! exit code.

#![forbid(unsafe_code)]

use meshnode::cli::{BenchCommand, Cli, Command, KeysCommand, StoreCommand, TxCommand};
use meshnode::config::Config;
use meshnode::crypto::Keypair;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match meshnode::cli::file::parse_from(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(&cli);
    meshnode::chain::store::quiet_guarded_panics();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (text, or JSON lines with `--log-json`). On text output, spans that ask for
/// one (`indicatif.pb_show`, e.g. a range sync) get a progress bar (tracing-indicatif) that
/// log lines print above; indicatif draws nothing when stderr is not a terminal, so logs and
/// CI see only the plain log lines.
fn init_tracing(cli: &Cli) {
    use tracing_indicatif::filter::{hide_indicatif_span_fields, IndicatifFilter};
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if cli.log_json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        let bars = tracing_indicatif::IndicatifLayer::new().with_span_field_formatter(
            hide_indicatif_span_fields(tracing_subscriber::fmt::format::DefaultFields::new()),
        );
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(bars.get_stderr_writer()))
            .with(bars.with_filter(IndicatifFilter::new(false)))
            .init();
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { dir, genesis } => {
            let done = meshnode::cli::file::init(&dir, genesis.as_deref())?;
            println!("wrote {}", done.config.display());
            println!(
                "wrote {} (peer id {})",
                done.node_key.display(),
                done.peer_id
            );
            println!("wrote {}", done.genesis.display());
            println!(
                "start the node with: meshnode run --config {}",
                done.config.display()
            );
            Ok(())
        }
        Command::Keys(KeysCommand::New { out }) => {
            let k = Keypair::generate();
            k.write_file(&out)?;
            println!("{}", k.address());
            Ok(())
        }
        Command::Store(StoreCommand::Check { data_dir }) => {
            let dir = data_dir.join("chain");
            let (store, spec) = meshnode::chain::ChainStore::open_existing(&dir)
                .map_err(|e| anyhow::anyhow!("store check failed: {e}"))?;
            let r = store
                .check(&spec)
                .map_err(|e| anyhow::anyhow!("store check failed: {e}"))?;
            println!(
                "store check ok: head {} at height {}; {} canonical blocks ({} stored), {} transactions, {} accounts match a replay",
                r.head_hash, r.head_height, r.blocks, r.stored_blocks, r.txs, r.accounts
            );
            Ok(())
        }
        Command::Store(StoreCommand::Repair {
            data_dir,
            resync,
            genesis,
        }) => {
            let spec = match genesis {
                Some(g) => Some(meshnode::genesis::GenesisFile::read(&g)?.to_spec()?),
                None => None,
            };
            let r = meshnode::chain::repair::repair(&data_dir.join("chain"), spec.as_ref(), resync)
                .map_err(|e| anyhow::anyhow!("store repair failed: {e}"))?;
            if r.resync {
                println!("store repair: chain cleared to genesis {}", r.kept_hash);
            } else {
                println!(
                    "store repair: kept the chain up to height {} (head {})",
                    r.kept_height, r.kept_hash
                );
            }
            if let Some(why) = &r.stopped_by {
                println!("  stopped at the first damage: {why}");
            }
            if let Some(m) = r.marker.filter(|m| m.height > r.kept_height) {
                println!(
                    "  the node had reached height {}: sync refills {} blocks from peers when it starts",
                    m.height,
                    m.height - r.kept_height
                );
            }
            Ok(())
        }
        Command::Tx(TxCommand::Sign {
            transfer,
            nonce,
            chain_id,
        }) => {
            let key = Keypair::from_spec(&transfer.from)?;
            let tx = meshnode::wallet::sign_transfer(
                &key,
                meshnode::wallet::Transfer {
                    chain_id,
                    nonce,
                    to: meshnode::rpc::client::parse_recipient(&transfer.to)?,
                    amount: transfer.amount,
                    fee: transfer.fee,
                    data: meshnode::rpc::client::parse_data(&transfer.data)?,
                },
            )?;
            println!("{}", hex::encode(tx.to_bytes()));
            Ok(())
        }
        Command::Tx(TxCommand::Decode { hex }) => {
            let hex = if hex == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                hex
            };
            let tx = meshnode::wallet::parse_raw(&hex)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&meshnode::wallet::describe(&tx))?
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Show { key }) => {
            let k = Keypair::from_spec(&key)?;
            println!("address:    {}", k.address());
            println!("public key: {}", hex::encode(k.public().0));
            Ok(())
        }
        Command::Run(args) => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = args.worker_threads {
                rt.worker_threads(n.into());
            }
            rt.enable_all()
                .build()?
                .block_on(async_main(Command::Run(args)))
        }
        command => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async_main(command))
        }
    }
}

async fn async_main(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => {
            let cfg = Config::from_raw(&args.raw())?;
            let with_parent = args.exit_with_parent;
            let stop = async move {
                tokio::select! {
                    _ = meshnode::devnet::stop_signal() => {}
                    _ = meshnode::devnet::parent_exit(), if with_parent => {}
                }
            };
            meshnode::node::run(cfg, stop).await
        }
        Command::Devnet(args) => meshnode::devnet::run_cli(args).await,
        Command::Fault(args) => {
            use meshnode::cli::FaultCommand as F;
            use meshnode::devnet::faults::DevnetAdminApiClient;
            let url = match (&args.admin, &args.dir) {
                (Some(u), _) => u.clone(),
                (None, Some(d)) => meshnode::devnet::read_admin_url(d)?,
                (None, None) => anyhow::bail!("give --dir or --admin"),
            };
            let c = meshnode::rpc::client::http(&url)?;
            let v = match args.fault {
                F::Status => c.status().await,
                F::Partition { groups } => c.partition(F::parse_groups(&groups)?).await,
                F::Heal => c.heal().await,
                F::Kill { node } => c.kill(node).await,
                F::Restart { node } => c.restart(node).await,
                F::Bootnodes { state } => c.bootnodes(state == "up").await,
                F::DamageStore { node } => c.damage_store(node).await,
                F::Spam { node } => c.spam(node).await,
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Command::Dashboard(args) => {
            let nodes = args
                .rpc
                .iter()
                .enumerate()
                .map(|(i, url)| meshnode::dashboard::DashboardNode {
                    name: format!("node{i}"),
                    rpc_url: url.clone(),
                })
                .collect();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let server = meshnode::dashboard::serve(args.listen, nodes, stop_rx).await?;
            println!("dashboard: http://{}/ (Ctrl-C stops)", server.local_addr);
            meshnode::devnet::stop_signal().await;
            let _ = stop_tx.send(true);
            let _ = server.task.await;
            Ok(())
        }
        Command::Tx(TxCommand::Send {
            transfer,
            nonce,
            conn,
        }) => {
            let data = meshnode::rpc::client::parse_data(&transfer.data)?;
            let client = meshnode::rpc::client::connect(&conn)?;
            let hash = meshnode::rpc::client::send_transfer_via(
                &client,
                &transfer.from,
                &transfer.to,
                transfer.amount,
                transfer.fee,
                nonce,
                data,
            )
            .await?;
            println!("{hash}");
            Ok(())
        }
        Command::Bench(BenchCommand::Propagation(args)) => {
            meshnode::bench::propagation::run_cli(args).await
        }
        Command::Bench(BenchCommand::Throughput(args)) => {
            meshnode::bench::throughput::run_cli(args).await
        }
        Command::Bench(BenchCommand::Scale(args)) => meshnode::bench::scale::run_cli(args).await,
        Command::Bench(BenchCommand::Idle(args)) => meshnode::bench::idle::run_cli(args).await,
        Command::Bench(BenchCommand::Nemesis(args)) => {
            meshnode::bench::nemesis::run_cli(args).await
        }
        Command::Bench(BenchCommand::Load(args)) => {
            meshnode::bench::propagation::run_load(args).await
        }
        Command::Bench(BenchCommand::Spammers(args)) => {
            meshnode::bench::propagation::run_spammers(args).await
        }
        Command::Rpc(args) => {
            let v = meshnode::rpc::client::call_cli(&args).await?;
            match v {
                // Plain strings print bare, as bitcoin-cli prints them.
                serde_json::Value::String(s) => println!("{s}"),
                other => println!("{}", serde_json::to_string_pretty(&other)?),
            }
            Ok(())
        }
        Command::Keys(_)
        | Command::Init { .. }
        | Command::Store(_)
        | Command::Tx(TxCommand::Sign { .. })
        | Command::Tx(TxCommand::Decode { .. }) => unreachable!("handled without a runtime"),
    }
}
