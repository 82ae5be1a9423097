// The server's HTTP endpoints that a game client uses (PROTOCOL.md section 4).
import { httpBase } from "./socket.js";
import { convert } from "./wire.js";
/** An HTTP answer other than 2xx, with the server's `error` and `detail`. */
export class HttpError extends Error {
    status;
    error;
    detail;
    constructor(status, error, detail) {
        super(`${status} ${error}: ${detail}`);
        this.status = status;
        this.error = error;
        this.detail = detail;
        this.name = "HttpError";
    }
}
/** The JSON of a 2xx answer; an `HttpError` with the server's `error` and `detail` otherwise. */
export async function json(response) {
    const text = await response.text();
    if (!response.ok) {
        let body = {};
        try {
            body = JSON.parse(text);
        }
        catch {
            body = { error: "http_error", detail: text };
        }
        throw new HttpError(response.status, body.error ?? "http_error", body.detail ?? text);
    }
    return JSON.parse(text);
}
/** A token from a development server's POST /auth/guest. */
export async function guestToken(url, options = {}) {
    const r = await fetch(`${httpBase(url)}/auth/guest`, { method: "POST", body: JSON.stringify(options) });
    return (await json(r)).token;
}
/** POST /matches: create a match. */
export async function createMatch(url, token, spec = {}) {
    const r = await fetch(`${httpBase(url)}/matches`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(spec),
    });
    return (await json(r));
}
/** GET /matches: running and recently finished matches, newest first. */
export async function listMatches(url) {
    return (await json(await fetch(`${httpBase(url)}/matches`)));
}
/** GET /matches/{id}/snapshot: a running match's world as of its last tick. */
export async function matchSnapshot(url, id) {
    const body = await json(await fetch(`${httpBase(url)}/matches/${id}/snapshot`, { cache: "no-store" }));
    return convert(body, "Snapshot", "json", "snapshot");
}
