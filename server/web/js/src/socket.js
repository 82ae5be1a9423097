// The WebSocket under a session or a spectator: the browser's, or Node's (Node 22 has it
// built in; Node 20 with --experimental-websocket), or any constructor with the same API.
/** A connection that could not be made, or was refused during the handshake. */
export class ConnectError extends Error {
    code;
    reason;
    constructor(code, reason) {
        super(`connection closed with ${code}${reason ? `: ${reason}` : ""}`);
        this.code = code;
        this.reason = reason;
        this.name = "ConnectError";
    }
}
/** The WebSocket address of `path` on the server at `base` (http://, https://, ws:// or wss://). */
export function wsUrl(base, path, query) {
    const url = new URL(path, base.replace(/^http/, "ws"));
    for (const [k, v] of Object.entries(query))
        if (v !== undefined)
            url.searchParams.set(k, String(v));
    return url.toString();
}
/** The HTTP address of the server at `base`. */
export function httpBase(base) {
    return base.replace(/^ws/, "http").replace(/\/+$/, "");
}
export function defaultWebSocket(given) {
    const ctor = given ?? globalThis.WebSocket;
    if (!ctor) {
        throw new Error("no WebSocket here: use Node 22 or later, Node 20 with --experimental-websocket, or pass options.WebSocket");
    }
    return ctor;
}
/**
 * Open a WebSocket and hand each frame (bytes or text) to `onFrame` and the close to
 * `onClose`. Resolves once open; rejects with a ConnectError if it closes first (an HTTP
 * refusal before the upgrade shows as 1006: the browser API does not expose the status).
 */
export function open(Ctor, url, onFrame, onClose) {
    return new Promise((resolve, reject) => {
        let opened = false;
        const ws = new Ctor(url);
        ws.binaryType = "arraybuffer";
        ws.onopen = () => {
            opened = true;
            resolve(ws);
        };
        ws.onmessage = (ev) => {
            const d = ev.data;
            if (typeof d === "string")
                onFrame(d);
            else if (d instanceof ArrayBuffer)
                onFrame(new Uint8Array(d));
            else if (ArrayBuffer.isView(d))
                onFrame(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
        };
        const refused = "the server refused the connection (check the token, the origin and the address)";
        // Some WebSocket implementations report a refused upgrade with an error and no close.
        ws.onerror = () => {
            if (!opened)
                reject(new ConnectError(1006, refused));
        };
        ws.onclose = (ev) => {
            if (!opened)
                reject(new ConnectError(ev.code, ev.reason || refused));
            else
                onClose({ code: ev.code, reason: ev.reason });
        };
    });
}
