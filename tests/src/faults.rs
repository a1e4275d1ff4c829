//! Fault injection against the real servers: a loopback proxy that passes requests through to a
//! real S3 or KMS server, or fails the ones a rule picks as the server would (an error status) or
//! as a crashed one would (the connection dropped), and records every request it passes (for
//! judging them against IAM policies); and a private SeaweedFS that a test can stop and restart
//! on the same data directory.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{free_port, tool, TempDir};

/// How a picked request fails.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An S3 error answer (XML), e.g. 503 `SlowDown` or 412 `PreconditionFailed`.
    S3(u16, &'static str),
    /// A KMS error answer (JSON), e.g. 500 `KMSInternalException`.
    Kms(u16, &'static str),
    /// The connection closes without an answer.
    Drop,
}

/// Fails requests whose method and head (request line and headers) match, `times` times or for ever.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    pub head_contains: String,
    pub fault: Fault,
    pub times: Option<usize>,
}

/// One request the proxy passed to the server, and the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request line and headers, as sent.
    pub head: String,
    /// The body of a JSON-protocol request (one with `X-Amz-Target`, as KMS's are); empty otherwise.
    pub body: Vec<u8>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    down: AtomicBool,
    injected: AtomicUsize,
    recorded: Mutex<Vec<Recorded>>,
}

/// A pass-through proxy in front of one real server; stopped when dropped.
pub struct FaultProxy {
    pub port: u16,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Proxies 127.0.0.1:<port> to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (state, stop) = (Arc::new(State::default()), Arc::new(AtomicBool::new(false)));
        let (accept_state, accept_stop) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let (state, upstream) = (accept_state.clone(), upstream.clone());
                std::thread::spawn(move || serve(client, &upstream, &state));
            }
        });
        FaultProxy { port, state, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn fail(&self, rule: Rule) {
        self.state.rules.lock().expect("rules").push(rule);
    }

    /// Removes every rule and brings the server back.
    pub fn heal(&self) {
        self.state.rules.lock().expect("rules").clear();
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// As if the server were stopped: every connection is closed at once.
    pub fn go_down(&self) {
        self.state.down.store(true, Ordering::SeqCst);
    }

    /// Every request passed through so far, in the order answered.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.recorded.lock().expect("recorded").clone()
    }

    /// How many requests were failed so far.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One connection carries one request: the proxy asks the server to close after answering, so
/// that every request's head passes through here to be judged.
fn serve(mut client: TcpStream, upstream: &str, state: &State) {
    if state.down.load(Ordering::SeqCst) {
        return;
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    if let Some(fault) = pick(state, &text) {
        state.injected.fetch_add(1, Ordering::SeqCst);
        let answer = match fault {
            Fault::Drop => return,
            Fault::S3(status, code) => (
                status,
                "application/xml",
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected fault</Message></Error>"),
            ),
            Fault::Kms(status, kind) => {
                (status, "application/x-amz-json-1.1", format!("{{\"__type\":\"{kind}\",\"message\":\"injected fault\"}}"))
            }
        };
        let (status, content_type, body) = answer;
        let response = format!(
            "HTTP/1.1 {status} Injected\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(response.as_bytes());
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else { return };
    let rewritten: String = text
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .take_while(|line| !line.is_empty())
        .map(|line| format!("{line}\r\n"))
        .collect::<String>()
        + "Connection: close\r\n\r\n";
    if server.write_all(rewritten.as_bytes()).is_err() {
        return;
    }
    // a JSON-protocol body (KMS: which key) is kept with the request; it is small
    let lower = text.to_ascii_lowercase();
    let mut body = Vec::new();
    if lower.contains("\r\nx-amz-target:") {
        let length = lower
            .split("\r\n")
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        body.resize(length, 0);
        if client.read_exact(&mut body).is_err() || server.write_all(&body).is_err() {
            return;
        }
    }
    let (Ok(mut client_reader), Ok(mut server_writer)) = (client.try_clone(), server.try_clone()) else { return };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut server_writer);
    });
    let mut first = [0u8; 4096];
    let Ok(read) = server.read(&mut first) else { return };
    let status = String::from_utf8_lossy(&first[..read]).split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    state.recorded.lock().expect("recorded").push(Recorded { head: text, body, status });
    if client.write_all(&first[..read]).is_err() {
        return;
    }
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

fn pick(state: &State, head: &str) -> Option<Fault> {
    let mut rules = state.rules.lock().expect("rules");
    let index = rules.iter().position(|rule| head.starts_with(rule.method) && head.contains(&rule.head_contains))?;
    let fault = rules[index].fault.clone();
    if let Some(times) = &mut rules[index].times {
        *times -= 1;
        if *times == 0 {
            rules.remove(index);
        }
    }
    Some(fault)
}

/// A SeaweedFS of the test's own (its own ports and data directory), so that stopping it touches
/// no other test; stopped when dropped.
pub struct PrivateSeaweedFs {
    pub s3_port: u16,
    /// Its other ports, kept across restarts as a real deployment's are.
    port_flags: Vec<String>,
    data: TempDir,
    child: Option<Child>,
}

impl PrivateSeaweedFs {
    pub fn start() -> Self {
        let names = [
            "master.port",
            "filer.port",
            "volume.port",
            "admin.port",
            "debug.port",
            "master.port.grpc",
            "filer.port.grpc",
            "volume.port.grpc",
            "s3.port.grpc",
        ];
        let port_flags = names.iter().map(|name| format!("-{name}={}", free_port())).collect();
        let mut server = PrivateSeaweedFs { s3_port: free_port(), port_flags, data: tempfile::tempdir().expect("temp dir"), child: None };
        server.launch();
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Stops the server (SIGTERM, as a service manager would) and starts it again on the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn launch(&mut self) {
        let weed = tool("SSHCA_WEED");
        let dir = self.data.path();
        let data: PathBuf = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let child = Command::new(weed)
            .arg(format!("-logdir={}", dir.display()))
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false", "-admin.ui=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-volume.max=100"])
            .args(&self.port_flags)
            .arg(format!("-s3.port={}", self.s3_port))
            .arg(format!("-s3.localSocket={}/s3.sock", dir.display()))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("weed.out")).expect("log file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start weed");
        self.child = Some(child);
        // a loaded 2-core machine (the other tests run beside this one) can take its time
        let deadline = Instant::now() + Duration::from_secs(90);
        while TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(Instant::now() < deadline, "the private SeaweedFS did not listen in 90 s: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("weed.out")).unwrap_or_default()
    }
}

impl Drop for PrivateSeaweedFs {
    fn drop(&mut self) {
        self.stop();
    }
}
