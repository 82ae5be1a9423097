//! The few HTTP calls a client or a bot needs: a guest token, creating and listing matches.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::ClientError;

/// `http://host:port` from `ws://host:port/…` or `http://host:port/…`.
pub fn base_url(url: &str) -> Result<(String, String), ClientError> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            ClientError::Url(format!(
                "{url}: use ws://HOST:PORT or http://HOST:PORT (TLS is not built in)"
            ))
        })?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() {
        return Err(ClientError::Url(format!("{url}: no host")));
    }
    Ok((format!("http://{authority}"), authority.to_string()))
}

/// One HTTP/1.1 request; returns the status and the body.
pub async fn request(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<(u16, Bytes), ClientError> {
    let (_, authority) = base_url(url)?;
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| ClientError::Io(format!("connecting to {authority}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", &authority);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?
        .to_bytes();
    Ok((status, body))
}

#[derive(Debug, Deserialize)]
struct GuestToken {
    token: String,
}

/// A guest token from a server in development mode.
pub async fn guest_token(url: &str, name: &str, spectator: bool) -> Result<String, ClientError> {
    let role = if spectator { "spectator" } else { "player" };
    let body = serde_json::json!({ "name": name, "role": role }).to_string();
    let (status, bytes) = request(url, "POST", "/auth/guest", None, Some(body)).await?;
    if status != 200 {
        return Err(ClientError::Http(format!(
            "POST /auth/guest: {status} {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    let t: GuestToken =
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Http(e.to_string()))?;
    Ok(t.token)
}

/// Create a match (`config` overrides the game's defaults); returns the server's description.
pub async fn create_match(
    url: &str,
    token: &str,
    game: &str,
    config: Option<serde_json::Value>,
    seed: Option<u64>,
) -> Result<serde_json::Value, ClientError> {
    let body = serde_json::json!({ "game": game, "config": config, "seed": seed }).to_string();
    let (status, bytes) = request(url, "POST", "/matches", Some(token), Some(body)).await?;
    if status != 201 {
        return Err(ClientError::Http(format!(
            "POST /matches: {status} {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Http(e.to_string()))
}

/// `GET path` as JSON.
pub async fn get_json(url: &str, path: &str) -> Result<serde_json::Value, ClientError> {
    let (status, bytes) = request(url, "GET", path, None, None).await?;
    if status != 200 {
        return Err(ClientError::Http(format!(
            "GET {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Http(e.to_string()))
}
