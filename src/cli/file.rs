//! The configuration file of `meshnode run --config FILE` (TOML) and the commented one
//! `meshnode init DIR` writes.
//!
//! Keys are the long names of `run`'s flags (`target-peers = 12`, `bootnode = ["…"]`), plus
//! the global `log` and `log-json`. Precedence, highest first: flag, environment variable,
//! file, built-in default (as Lighthouse's `--config-file` and geth's `--config`). Relative
//! paths in `data-dir`, `genesis` and `node-key` are relative to the file's directory, so a
//! directory made by `init` can be moved. An unknown key, or a value the flag would refuse,
//! is an error naming the file.
//!
//! How: the command line is parsed once; each file setting whose flag was neither given nor
//! set by its environment variable becomes that flag, appended to the command line, which is
//! parsed again. clap checks the values exactly as it checks flags.

use super::Cli;
use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Keys whose values are paths, taken relative to the file's directory.
const PATH_KEYS: &[&str] = &["data-dir", "genesis", "node-key"];

/// Parses `args` (the program name first) into a [`Cli`], applying `run --config FILE`.
/// clap's own errors (and `--help`, `--version`) exit the process as clap does; a config file
/// that cannot be read or holds an unknown key or a bad value is an error naming the file.
pub fn parse_from(args: Vec<OsString>) -> anyhow::Result<Cli> {
    let cmd = Cli::command();
    let matches = cmd
        .clone()
        .try_get_matches_from(&args)
        .unwrap_or_else(|e| e.exit());
    let file = match matches.subcommand() {
        Some(("run", sub)) => sub.get_one::<PathBuf>("config").cloned().map(|p| (p, sub)),
        _ => None,
    };
    let Some((path, sub)) = file else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let run = cmd
        .find_subcommand("run")
        .expect("run is a subcommand")
        .clone();
    let settable: Vec<&clap::Arg> = run
        .get_arguments()
        .chain(cmd.get_arguments())
        .filter(|a| {
            a.get_long()
                .is_some_and(|l| !["config", "help", "version"].contains(&l))
        })
        .collect();
    let mut extra: Vec<OsString> = Vec::new();
    for (key, value) in &table {
        let Some(arg) = settable.iter().find(|a| a.get_long() == Some(key.as_str())) else {
            bail!(
                "unknown setting `{key}` in config file {} (settings are the long names of `meshnode run` flags: {})",
                path.display(),
                settable
                    .iter()
                    .filter_map(|a| a.get_long())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        if matches!(
            sub.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        extra.extend(
            flag_args(key, value, arg, &base)
                .with_context(|| format!("in config file {}", path.display()))?,
        );
    }
    let mut all = args;
    all.extend(extra);
    Cli::try_parse_from_checked(all)
        .map_err(|e| anyhow::anyhow!("in config file {}: {}", path.display(), e.trim_end()))
}

impl Cli {
    /// `try_parse_from` with the error rendered as text (help and version never reach here:
    /// the first parse handled them).
    fn try_parse_from_checked(args: Vec<OsString>) -> Result<Cli, String> {
        <Cli as clap::Parser>::try_parse_from(args).map_err(|e| e.to_string())
    }
}

/// The command-line form of one file setting.
fn flag_args(
    key: &str,
    value: &toml::Value,
    arg: &clap::Arg,
    base: &Path,
) -> anyhow::Result<Vec<OsString>> {
    let flag = OsString::from(format!("--{key}"));
    let scalar = |v: &toml::Value| -> anyhow::Result<OsString> {
        let s = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "`{key}` takes a string or a number, not {}",
                other.type_str()
            ),
        };
        Ok(if PATH_KEYS.contains(&key) && Path::new(&s).is_relative() {
            base.join(&s).into_os_string()
        } else {
            s.into()
        })
    };
    Ok(match (arg.get_action(), value) {
        (ArgAction::SetTrue, toml::Value::Boolean(true)) => vec![flag],
        (ArgAction::SetTrue, toml::Value::Boolean(false)) => vec![],
        (ArgAction::SetTrue, other) => bail!("`{key}` is true or false, not {other}"),
        (ArgAction::Append, toml::Value::Array(items)) => {
            let mut out = Vec::new();
            for v in items {
                out.push(flag.clone());
                out.push(scalar(v)?);
            }
            out
        }
        (_, toml::Value::Array(_)) => bail!("`{key}` takes one value, not a list"),
        (_, v) => vec![flag, scalar(v)?],
    })
}

/// The commented configuration `meshnode init` writes: every `run` setting with its help
/// text and its default, commented out, except the `set` ones (key, TOML value text).
pub fn commented_config(set: &[(&str, String)]) -> String {
    let cmd = Cli::command();
    let run = cmd.find_subcommand("run").expect("run is a subcommand");
    let mut out = String::from(
        "# meshnode configuration: `meshnode run --config THIS_FILE`.\n\
         # Keys are the long names of `meshnode run` flags. Precedence: flag > environment\n\
         # variable > this file > default. Relative data-dir, genesis and node-key paths are\n\
         # relative to this file's directory.\n",
    );
    let args = cmd.get_arguments().chain(run.get_arguments()).filter(|a| {
        a.get_long()
            .is_some_and(|l| l != "config" && l != "help" && l != "version")
    });
    for a in args {
        let key = a.get_long().expect("filtered on long names");
        out.push('\n');
        let help = a
            .get_long_help()
            .or(a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in wrap(&help, 92) {
            out.push_str(&format!("# {line}\n"));
        }
        if let Some(env) = a.get_env() {
            out.push_str(&format!("# (environment: {})\n", env.to_string_lossy()));
        }
        if let Some((_, v)) = set.iter().find(|(k, _)| *k == key) {
            out.push_str(&format!("{key} = {v}\n"));
            continue;
        }
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|d| toml_value(&d.to_string_lossy()))
            .collect();
        let shown = match (a.get_action(), defaults.as_slice()) {
            (ArgAction::SetTrue, _) => "false".to_string(),
            (ArgAction::Append, d) => format!("[{}]", d.join(", ")),
            (_, [d]) => d.clone(),
            _ => "\"\"".to_string(),
        };
        out.push_str(&format!("# {key} = {shown}\n"));
    }
    out
}

/// A default value as TOML: a bare integer when it is one, else a quoted string.
fn toml_value(s: &str) -> String {
    if s.parse::<i64>().is_ok() {
        s.to_string()
    } else {
        toml::Value::String(s.to_string()).to_string()
    }
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

/// What `meshnode init DIR` wrote.
#[derive(Debug)]
pub struct Initialized {
    /// The config file.
    pub config: PathBuf,
    /// The libp2p node key file.
    pub node_key: PathBuf,
    /// The genesis file.
    pub genesis: PathBuf,
    /// The node's libp2p peer id (from the new node key).
    pub peer_id: String,
}

/// `meshnode init DIR`: creates DIR if needed and writes `meshnode.toml` (commented, with
/// `data-dir = "."`, `genesis = "genesis.json"`, `node-key = "node.key"`), a new node key
/// (mode 0600) and the genesis (`template`, else [`crate::genesis::GenesisFile::load`]'s
/// default). Refuses to overwrite any of the three.
pub fn init(dir: &Path, template: Option<&Path>) -> anyhow::Result<Initialized> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("meshnode.toml");
    let node_key = dir.join("node.key");
    let genesis = dir.join("genesis.json");
    for p in [&config, &node_key, &genesis] {
        if p.exists() {
            bail!(
                "{} exists; init never overwrites (remove it or pick another directory)",
                p.display()
            );
        }
    }
    let g = crate::genesis::GenesisFile::load(template)?;
    g.write(&genesis)?;
    let key = crate::crypto::Keypair::generate();
    key.write_file(&node_key)?;
    let peer_id = libp2p::identity::Keypair::ed25519_from_bytes(key.secret_bytes())?
        .public()
        .to_peer_id()
        .to_string();
    let text = commented_config(&[
        ("data-dir", "\".\"".into()),
        ("genesis", "\"genesis.json\"".into()),
        ("node-key", "\"node.key\"".into()),
    ]);
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    Ok(Initialized {
        config,
        node_key,
        genesis,
        peer_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run_args(cli: Cli) -> super::super::RunArgs {
        match cli.command {
            super::super::Command::Run(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flag_beats_the_file_and_the_file_beats_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "target-peers = 7\nmax-peers = 30\nlisten = [\"/ip4/127.0.0.1/tcp/1\", \"/ip4/127.0.0.1/tcp/2\"]\ndata-dir = \"d\"\nlog = \"debug\"\n",
        )
        .unwrap();
        let cli = parse_from(os(&[
            "meshnode",
            "run",
            "--config",
            f.to_str().unwrap(),
            "--max-peers",
            "40",
        ]))
        .unwrap();
        assert_eq!(cli.log, "debug");
        let r = run_args(cli);
        assert_eq!(r.target_peers, 7);
        assert_eq!(r.max_peers, 40);
        assert_eq!(r.listen.len(), 2);
        assert_eq!(r.data_dir, dir.path().join("d"));
        assert_eq!(r.outbound_peers, crate::p2p::PeerConfig::DEFAULT_OUTBOUND);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "target-peer = 7\n").unwrap();
        let e = parse_from(os(&["meshnode", "run", "--config", f.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown setting `target-peer`"), "{e}");
        assert!(e.contains("c.toml"), "{e}");
        std::fs::write(&f, "target-peers = \"many\"\n").unwrap();
        let e = format!(
            "{:#}",
            parse_from(os(&["meshnode", "run", "--config", f.to_str().unwrap()])).unwrap_err()
        );
        assert!(e.contains("c.toml") && e.contains("many"), "{e}");
        std::fs::write(&f, "max-peers = [1, 2]\n").unwrap();
        let e = format!(
            "{:#}",
            parse_from(os(&["meshnode", "run", "--config", f.to_str().unwrap()])).unwrap_err()
        );
        assert!(e.contains("not a list"), "{e}");
    }

    #[test]
    fn the_commented_config_parses_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, commented_config(&[])).unwrap();
        let with = run_args(
            parse_from(os(&["meshnode", "run", "--config", f.to_str().unwrap()])).unwrap(),
        );
        let without = run_args(parse_from(os(&["meshnode", "run"])).unwrap());
        assert_eq!(format!("{:?}", with.raw()), format!("{:?}", without.raw()));
        // Uncommenting every default changes nothing either.
        let uncommented: String = commented_config(&[])
            .lines()
            .filter(|l| {
                l.starts_with("# ")
                    && l[2..]
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            })
            .map(|l| format!("{}\n", &l[2..]))
            .filter(|l| !l.starts_with("log-json") && !l.contains("= \"\""))
            .collect();
        std::fs::write(&f, &uncommented).unwrap();
        let all = run_args(
            parse_from(os(&["meshnode", "run", "--config", f.to_str().unwrap()]))
                .unwrap_or_else(|e| panic!("{e:#}\n{uncommented}")),
        );
        let mut expected = without.raw();
        expected.data_dir = dir.path().join(&expected.data_dir);
        assert_eq!(format!("{:?}", all.raw()), format!("{:?}", expected));
    }
}
