//! The web pages the server embeds, served from memory: the viewer at `/`, the play page at
//! `/play` (for a browser: a request without a WebSocket upgrade that accepts HTML), the
//! read side's stats page at `/stats`, the style sheet, and their scripts under `/js/`. The scripts are compiled from clients/ts
//! (the client library and the pages, in TypeScript) by `npm run web` there; a test fails when
//! the checked-in output differs from a fresh compile, and another when a file under
//! server/web is not in [`ASSETS`].

/// One embedded file: its path (without the leading `/`), content type and body.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const fn asset(path: &'static str, content_type: &'static str, body: &'static str) -> Asset {
    Asset {
        path,
        content_type,
        body,
    }
}

/// Every file of server/web.
pub const ASSETS: &[Asset] = &[
    asset(
        "",
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    ),
    asset(
        "js/src/channel.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/channel.js"),
    ),
    asset(
        "js/src/generated/protocol.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/generated/protocol.js"),
    ),
    asset(
        "js/src/http.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/http.js"),
    ),
    asset(
        "js/src/index.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/index.js"),
    ),
    asset(
        "js/src/msgpack.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/msgpack.js"),
    ),
    asset(
        "js/src/queries.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/queries.js"),
    ),
    asset(
        "js/src/session.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/session.js"),
    ),
    asset(
        "js/src/socket.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/socket.js"),
    ),
    asset(
        "js/src/spectator.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/spectator.js"),
    ),
    asset(
        "js/src/wire.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/wire.js"),
    ),
    asset(
        "js/src/world.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/src/world.js"),
    ),
    asset(
        "js/web/chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/web/chart.js"),
    ),
    asset(
        "js/web/play.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/web/play.js"),
    ),
    asset(
        "js/web/stats.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/web/stats.js"),
    ),
    asset(
        "js/web/viewer.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/js/web/viewer.js"),
    ),
    asset(
        "play",
        "text/html; charset=utf-8",
        include_str!("../../web/play.html"),
    ),
    asset(
        "stats",
        "text/html; charset=utf-8",
        include_str!("../../web/stats.html"),
    ),
    asset(
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
];

/// The file served at `path` (without the leading `/`).
pub fn asset_at(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("server/web is readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(std::fs::read_to_string(&path).expect("text"));
            }
        }
    }

    #[test]
    fn every_file_of_server_web_is_served() {
        let mut found = Vec::new();
        files(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("web"),
            &mut found,
        );
        for body in &found {
            assert!(
                ASSETS.iter().any(|a| a.body == body),
                "a file of server/web is not in web::ASSETS: add it (it starts {:?})",
                &body[..body.len().min(80)]
            );
        }
        assert_eq!(found.len(), ASSETS.len(), "each asset is one file");
    }
}
