//! A real write failure in a running server: the data directory is a 96 KiB tmpfs, which the
//! match's replay fills. The match stops taking commands, its players are closed with 4010
//! (match_stopped) naming the failure, and the replay file reopens cleanly and verifies.
//! Mounting needs root (as in CI); elsewhere the test says so and does nothing.

use serde_json::json;
use std::time::Duration;
use tickforge_client::{ClientError, Session};
use tickforge_protocol::{Command, ServerMessage};
use tickforge_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_match_and_leaves_a_verifiable_replay() {
    let mount = tempfile::tempdir().expect("temp dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96k", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("not run: mounting a tmpfs needs root");
        return;
    }
    let unmount = scopeguard(mount.path().to_path_buf());
    let data = mount.path().join("data");
    // The read models live on another disk: the tmpfs is the replay's alone.
    let read_dir = tempfile::tempdir().expect("temp dir");
    let read_db = read_dir.path().join("read-models.sqlite");
    let server = TestServer::start(|c| {
        c.data_dir = data.clone();
        c.read_db = Some(tickforge_projections::Target::Sqlite(read_db.clone()));
    })
    .await;
    let id = server
        .create_match("drift", json!({ "max_players": 8 }), 1)
        .await;
    let mut players = Vec::new();
    for i in 0..8 {
        let url = server.url.clone();
        players.push(tokio::spawn(async move {
            let token = tickforge_client::guest_token(&url, "p", false)
                .await
                .expect("token");
            let mut s = Session::join(&url, &token, Some(id), &format!("p{i}"))
                .await
                .expect("joins");
            let me = s.entity();
            loop {
                match tokio::time::timeout(Duration::from_secs(30), s.recv())
                    .await
                    .expect("the match does not hang")
                {
                    Ok(ServerMessage::Tick(_)) => {
                        let _ = s
                            .send(Command::Drift {
                                entity: me,
                                dx: 9,
                                dy: -9,
                            })
                            .await;
                    }
                    Ok(_) => {}
                    Err(ClientError::Closed { code, reason }) => return (code, reason),
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for p in players {
        let (code, reason) = p.await.expect("the player ran");
        assert_eq!(
            code,
            Some(4010),
            "players are told the match stopped: {reason}"
        );
        assert!(
            reason.contains("replay log failed"),
            "the reason names the failure: {reason}"
        );
    }
    let info = server
        .state
        .registry
        .list(tickforge_server::matches::ListState::All, None, 1000)
        .0
        .into_iter()
        .find(|m| m.id == id)
        .expect("listed");
    assert_eq!(info.state, tickforge_server::matches::MatchState::Stopped);
    let full = server.replay_path(id);
    server.stop().await;
    // Recovery keeps a copy of a damaged file before cutting it, so on the still-full disk it
    // refuses (nothing is cut without a copy); an operator frees space first. Here: a copy of
    // the file on a disk with room.
    let room = tempfile::tempdir().expect("temp dir");
    let path = room.path().join("match.tfr");
    std::fs::copy(&full, &path).expect("copies");
    let recovery = tickforge_server::log::recover::recover(
        &path,
        Default::default(),
        tickforge_server::log::format::DEFAULT_MAX_RECORD_BYTES,
    )
    .expect("the file reopens");
    assert!(
        recovery
            .scan
            .damage
            .as_ref()
            .is_none_or(|d| d.resumes_at.is_none()),
        "only the tail can be torn"
    );
    let verified = tickforge_replay::verify(&path, |_, _| {})
        .expect("reads")
        .expect("what was written verifies");
    assert!(
        verified.ticks > 50,
        "the match ran until the disk filled ({} ticks)",
        verified.ticks
    );
    drop(unmount);
}

/// Unmounts the tmpfs when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn scopeguard(path: std::path::PathBuf) -> Unmount {
    Unmount(path)
}
