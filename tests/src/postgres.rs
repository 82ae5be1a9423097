//! A real PostgreSQL server for tests: Debian's package (installed by
//! `scripts/install-test-tools`), a new cluster made by `initdb` in a temporary directory,
//! listening on a free loopback port. It can be stopped and started again (an outage), and is
//! stopped when dropped.
//!
//! PostgreSQL refuses to run as root: when the tests do, the server runs as the `postgres`
//! user that Debian's package creates.

use std::os::unix::fs::{MetadataExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::nats::free_port;

/// The cluster's superuser, trusted on loopback.
pub const USER: &str = "tickforge";

/// A PostgreSQL server of a test.
#[derive(Debug)]
pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// The user and group it runs as, when the tests run as root.
    run_as: Option<(u32, u32)>,
    dir: tempfile::TempDir,
}

/// Where PostgreSQL's programs are: `TICKFORGE_PG_BIN`, else the newest of Debian's
/// `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TICKFORGE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((n, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The uid and gid of `user`, from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))?
    })
}

impl PgServer {
    /// Make a new cluster and start it. `Err` says why PostgreSQL cannot run here (the test
    /// prints it and is skipped); a server that is there but fails to start panics.
    pub fn start() -> Result<PgServer, String> {
        let bin = bin_dir().ok_or(
            "PostgreSQL is not installed (scripts/install-test-tools installs Debian's \
             postgresql as root; or set TICKFORGE_PG_BIN to its bin directory)",
        )?;
        // /proc/self belongs to the process's effective user.
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let run_as = if root {
            Some(user_ids("postgres").ok_or(
                "the tests run as root and PostgreSQL refuses to: there is no postgres user \
                 to run it as (Debian's postgresql package creates it)",
            )?)
        } else {
            None
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), Some(uid), Some(gid)).expect("chown the test's directory");
        }
        let server = PgServer {
            port: free_port(),
            bin,
            data,
            log,
            run_as,
            dir,
        };
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(&server.data)
            .args([
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .expect("runs initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.start_again();
        Ok(server)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.env_remove("PGDATA").env("LC_ALL", "C.UTF-8");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// `pg_ctl` on this server's cluster.
    fn pg_ctl(&self) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.data);
        cmd
    }

    /// Start the server (again, after [`PgServer::stop`]) and wait until it takes connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .pg_ctl()
            .arg("-l")
            .arg(&self.log)
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .output()
            .expect("runs pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stop the server (its connections are closed): a database outage.
    pub fn stop(&self) {
        let out = self
            .pg_ctl()
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .expect("runs pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The URL of database `db` (made by [`PgServer::create_db`]).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Make a new, empty database (with `psql`, so that it may be called from async tests).
    pub fn create_db(&self, db: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {db}"))
            .output()
            .expect("runs psql");
        assert!(
            out.status.success(),
            "creating database {db}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server's log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Immediate: the directory goes with the test.
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
