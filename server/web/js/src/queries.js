// The read side's query API (docs/QUERIES.md): careers, leaderboards, match summaries and
// timelines, answered from the server's read models. Each function returns the answer's JSON
// as typed here, `null` where the server has no such player or match (404 not_found), and
// throws an `HttpError` otherwise (400 bad_query names the parameter; 503 while the read
// models' database is down; 404 no_read_models on a server started with --read-db off).
import { HttpError, json } from "./http.js";
import { httpBase } from "./socket.js";
async function orNull(url) {
    try {
        return (await json(await fetch(url, { cache: "no-store" })));
    }
    catch (e) {
        if (e instanceof HttpError && e.status === 404 && e.error === "not_found")
            return null;
        throw e;
    }
}
function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params))
        if (v !== undefined)
            q.set(k, String(v));
    const s = q.toString();
    return s ? `?${s}` : "";
}
/** GET /players/{name}; `null` for a name that never played. */
export function career(url, name) {
    return orNull(`${httpBase(url)}/players/${encodeURIComponent(name)}`);
}
/** GET /leaderboard. */
export async function leaderboard(url, options) {
    const r = await fetch(`${httpBase(url)}/leaderboard${query(options)}`, { cache: "no-store" });
    return (await json(r));
}
/** GET /matches/{id}/summary; `null` for a match the read models do not hold. */
export function summary(url, id) {
    return orNull(`${httpBase(url)}/matches/${id}/summary`);
}
/** GET /matches/{id}/timeline; `null` for a match the read models do not hold. */
export function timeline(url, id, options = {}) {
    return orNull(`${httpBase(url)}/matches/${id}/timeline${query(options)}`);
}
