//! A real NATS JetStream cluster for tests: `nats-server` processes (Debian's package, installed
//! by `scripts/install-test-tools`) on free loopback ports, their stores in a temporary
//! directory, routed to each other. Every process is killed when the cluster is dropped.

use std::path::PathBuf;
use std::time::Duration;

/// One `nats-server` of a test cluster.
#[derive(Debug)]
pub struct NatsNode {
    pub name: String,
    pub client_port: u16,
    pub route_port: u16,
    store: PathBuf,
    child: Option<tokio::process::Child>,
}

/// A JetStream cluster of `nats-server` processes on loopback.
#[derive(Debug)]
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
    _dir: tempfile::TempDir,
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl NatsCluster {
    /// Start `n` servers (3 for a JetStream cluster with R3) and wait until each takes
    /// connections.
    pub async fn start(n: usize) -> NatsCluster {
        NatsCluster::start_with(n, &[]).await
    }

    /// [`NatsCluster::start`], each server run through `wrapper` (for benches:
    /// `["taskset", "-c", "1"]` pins them to a core).
    pub async fn start_with(n: usize, wrapper: &[&str]) -> NatsCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes: Vec<NatsNode> = (0..n)
            .map(|i| NatsNode {
                name: format!("n{i}"),
                client_port: free_port(),
                route_port: free_port(),
                store: dir.path().join(format!("n{i}")),
                child: None,
            })
            .collect();
        let routes: Vec<String> = nodes
            .iter()
            .map(|m| format!("nats://127.0.0.1:{}", m.route_port))
            .collect();
        for node in &mut nodes {
            node.child = Some(spawn(node, &routes, wrapper));
        }
        let cluster = NatsCluster { nodes, _dir: dir };
        for node in &cluster.nodes {
            wait_for_port(node.client_port).await;
        }
        cluster
    }

    /// Every server's client URL, comma-separated: what `--nats` takes.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Server `i`'s client URL.
    pub fn url_of(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// The first server's client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[0].client_port)
    }
}

fn spawn(node: &NatsNode, routes: &[String], wrapper: &[&str]) -> tokio::process::Child {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg("nats-server");
            c
        }
        None => tokio::process::Command::new("nats-server"),
    };
    command
        .args(["-a", "127.0.0.1", "-p"])
        .arg(node.client_port.to_string())
        .args(["-n", &node.name, "-js", "-sd"])
        .arg(&node.store)
        .args(["--cluster_name", "tickforge-test", "--cluster"])
        .arg(format!("nats://127.0.0.1:{}", node.route_port));
    if routes.len() > 1 {
        command.args(["--routes", &routes.join(",")]);
    }
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server starts (scripts/install-test-tools installs Debian's nats-server)")
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nats-server did not listen on port {port} within 10 s");
}
