//! The live propagation view in a real browser: `meshnode devnet --dashboard` serves the page,
//! headless Chromium (Debian's `chromium`) loads it, driven over the Chrome DevTools Protocol.
//! The page loads without console errors, shows every node and the links between them, and a
//! produced block's wave reaches every node in the DOM; the same page attaches to nodes given
//! as `?rpc=URL,…`. A screenshot is written to `target/dashboard.png`.
//!
//! Chromium is started with every host name but 127.0.0.1 unresolvable and its background
//! services off, so it talks to nothing but the devnet.

mod common;

use common::{repo_path, DevnetProcess};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The browser's process group, killed when the test ends, passed or not.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        // SIGTERM first: Chromium then stops and reaps its own helper processes.
        let pid = Pid::from_raw(self.0.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Starts headless Chromium with remote debugging on a free port; returns it and the port.
fn start_browser(profile: &Path) -> (Browser, u16) {
    let exe = chromium().expect("chromium is installed (apt-get install chromium; .ci/run does)");
    let child = std::os::unix::process::CommandExt::process_group(
        Command::new(exe).args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--window-size=1400,1000",
            "--remote-debugging-port=0",
        ]),
        0,
    )
    .arg(format!("--user-data-dir={}", profile.display()))
    // Chromium's scratch directories (org.chromium.Chromium.*) go under the profile, which
    // the test removes, not under /tmp.
    .env("TMPDIR", profile)
    .arg("about:blank")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let browser = Browser(child);
    let port_file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.parse().ok()))
        {
            return (browser, port);
        }
        assert!(Instant::now() < deadline, "Chromium did not start in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Chrome DevTools Protocol session with one page; console errors and uncaught exceptions
/// are collected from the events that arrive meanwhile.
struct Page {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    errors: Vec<String>,
}

impl Page {
    fn attach(port: u16) -> Page {
        let targets: Value = ureq::get(&format!("http://127.0.0.1:{port}/json/list"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (ws, _) = tungstenite::connect(url).unwrap();
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        let mut p = Page {
            ws,
            next: 1,
            errors: Vec::new(),
        };
        for m in ["Runtime.enable", "Log.enable", "Page.enable"] {
            p.call(m, json!({}));
        }
        p
    }

    /// Sends one command and returns its result, recording events read meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
            self.record(&v);
        }
    }

    fn record(&mut self, ev: &Value) {
        let p = &ev["params"];
        match ev["method"].as_str() {
            Some("Runtime.consoleAPICalled")
                if ["error", "assert"].contains(&p["type"].as_str().unwrap_or("")) =>
            {
                self.errors
                    .push(format!("console.{}: {}", p["type"], p["args"]));
            }
            Some("Runtime.exceptionThrown") => {
                self.errors
                    .push(format!("exception: {}", p["exceptionDetails"]));
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.errors.push(format!("log: {}", p["entry"]));
            }
            _ => {}
        }
    }

    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true}),
        );
        assert!(r["exceptionDetails"].is_null(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    /// Navigates and waits until `cond` holds for the page's summary, or fails after 90 s.
    fn wait_for(&mut self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let s = self.eval(SUMMARY);
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not after 90 s; page: {s}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// What the test reads from the page's DOM.
const SUMMARY: &str = r##"(() => {
  const w = document.getElementById("wave");
  const status = document.getElementById("status");
  if (!w || !status) return { loading: document.URL };
  return {
    nodes: document.querySelectorAll("#graph g.node").length,
    lit: document.querySelectorAll("#graph g.node.lit").length,
    down: document.querySelectorAll("#graph g.node.down").length,
    edges: document.querySelectorAll("#graph line.edge").length,
    delivery: document.querySelectorAll("#graph line.edge.delivery").length,
    rows: document.querySelectorAll("#nodes tbody tr").length,
    cdf: document.querySelectorAll("#cdf path.cdf-line").length,
    wave: w ? { ...w.dataset } : null,
    status: status.textContent,
  };
})()"##;

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn the_dashboard_shows_every_node_and_a_blocks_wave_reaching_all_of_them() {
    const N: usize = 5;
    let tmp = tempfile::tempdir().unwrap();
    let net_dir = tmp.path().join("net");
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshnode"))
        .args(["devnet", "--nodes", &N.to_string(), "--slot-ms", "1000"])
        .args([
            "--rpc-base-port",
            "0",
            "--dashboard",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(&net_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let devnet = DevnetProcess {
        child,
        dir: net_dir,
        nodes: N,
    };
    // The devnet prints the dashboard's address once every node is up.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("dashboard: ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let dashboard = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("the devnet printed its dashboard URL");

    let profile = tempfile::tempdir().unwrap();
    let (_browser, port) = start_browser(profile.path());
    let mut page = Page::attach(port);
    page.call("Page.navigate", json!({"url": dashboard}));
    let s = page.wait_for("every node shown, a block's wave at all of them", |s| {
        num(&s["nodes"]) == N as u64
            && num(&s["wave"]["reached"]) == N as u64
            && num(&s["wave"]["total"]) == N as u64
            && num(&s["wave"]["height"]) >= 1
            && num(&s["lit"]) == N as u64
            && num(&s["delivery"]) >= 1
            && num(&s["edges"]) >= N as u64 - 1
    });
    assert_eq!(num(&s["down"]), 0, "{s}");
    assert_eq!(num(&s["rows"]), N as u64, "{s}");
    assert_eq!(num(&s["cdf"]), 1, "{s}");
    eprintln!("dashboard: {s}");
    let shot = page.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        shot["data"].as_str().unwrap(),
    )
    .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = repo_path("target/dashboard.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", out.display(), png.len());
    assert!(page.errors.is_empty(), "console errors: {:#?}", page.errors);

    // The same page attached to two of the nodes by their RPC URLs.
    let urls: Vec<String> = (0..2)
        .map(|i| {
            let nf: Value = serde_json::from_slice(
                &std::fs::read(devnet.dir.join(format!("node{i}/node.json"))).unwrap(),
            )
            .unwrap();
            nf["rpc_url"].as_str().unwrap().to_string()
        })
        .collect();
    let attach = format!("{dashboard}?rpc={}", urls.join(","));
    page.call("Page.navigate", json!({"url": attach}));
    page.wait_for("two attached nodes and a wave at both", |s| {
        num(&s["nodes"]) == 2 && num(&s["wave"]["reached"]) == 2 && num(&s["edges"]) == 1
    });
    assert!(page.errors.is_empty(), "console errors: {:#?}", page.errors);
    drop(devnet);
}
