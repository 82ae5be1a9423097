// A spectator's feed (PROTOCOL.md section 14): one Tick per tick with its events and state
// hash, from any seq or live, in JSON or MessagePack. The feed promises no gap and no
// duplicate; the client checks it, and reports a break as an error rather than hide it.
import { Channel } from "./channel.js";
import { DecodeError, decode } from "./msgpack.js";
import { defaultWebSocket, open, wsUrl } from "./socket.js";
import { convert } from "./wire.js";
/** The seqs of the feed broke their promise (a gap or a repeat). */
export class FeedError extends Error {
    expected;
    got;
    constructor(expected, got) {
        super(`the feed skipped or repeated events: seq ${got} where ${expected} was next`);
        this.expected = expected;
        this.got = got;
        this.name = "FeedError";
    }
}
export class Spectator {
    /** The seq of the last event received (the starting cursor before any). */
    lastSeq = 0;
    /** The last tick received. */
    tick = 0;
    /** Whether the feed has caught up with the live match. */
    live = false;
    /** Ticks received. */
    ticks = 0;
    bytesReceived = 0;
    ws = null;
    messages;
    closed = false;
    /** From "live": the cursor is where Live says, until an event has come. */
    fromLive = false;
    constructor(maxQueued) {
        this.messages = new Channel(maxQueued);
    }
    /** Watch match `matchId` on the server at `url`. */
    static async watch(url, matchId, options) {
        const s = new Spectator(options.maxQueued ?? 4096);
        const format = options.format ?? "msgpack";
        if (typeof options.from === "number")
            s.lastSeq = options.from;
        else
            s.fromLive = true;
        const address = wsUrl(url, `/spectate/${matchId}`, {
            from: options.from ?? "live",
            delay: options.delay,
            format,
            token: options.token,
        });
        s.ws = await open(defaultWebSocket(options.WebSocket), address, (d) => s.onFrame(d), (c) => s.finish(c));
        return s;
    }
    on(listener) {
        return this.messages.on(listener);
    }
    next() {
        return this.messages.next();
    }
    [Symbol.asyncIterator]() {
        return this.messages[Symbol.asyncIterator]();
    }
    close() {
        this.ws?.close(1000, "done watching");
    }
    onFrame(data) {
        this.bytesReceived += data.length;
        let message;
        try {
            if (typeof data === "string") {
                message = convert(JSON.parse(data), "SpectatorMessage", "json", "SpectatorMessage");
            }
            else {
                const value = decode(data);
                // The one binary frame of a JSON feed: ServerMessage::Error, just before the close.
                const isError = typeof value === "object" && value !== null && !Array.isArray(value) && "error" in value;
                message = isError
                    ? convert(value, "ServerMessage", "msgpack", "ServerMessage")
                    : convert(value, "SpectatorMessage", "msgpack", "SpectatorMessage");
            }
        }
        catch (e) {
            const reason = e instanceof DecodeError || e instanceof SyntaxError ? `a frame could not be read: ${e.message}` : String(e);
            this.ws?.close(1000, "unreadable frame");
            return this.finish({ code: 1007, reason });
        }
        const broken = (detail) => {
            this.ws?.close(1000, "feed broke");
            this.finish({ code: 1007, reason: detail });
        };
        if ("tick" in message) {
            if (this.ticks > 0 && message.tick.tick !== this.tick + 1) {
                return broken(`the feed skipped or repeated ticks: tick ${message.tick.tick} after tick ${this.tick}`);
            }
            for (const event of message.tick.events) {
                this.fromLive = false;
                if (event.seq !== this.lastSeq + 1)
                    return broken(new FeedError(this.lastSeq + 1, event.seq).message);
                this.lastSeq = event.seq;
            }
            this.tick = message.tick.tick;
            this.ticks += 1;
        }
        else if ("live" in message) {
            this.live = true;
            if (this.fromLive)
                this.lastSeq = message.live.seq;
            else if (message.live.seq !== this.lastSeq)
                return broken(new FeedError(this.lastSeq, message.live.seq).message);
            this.fromLive = false;
        }
        else if ("ended" in message && !this.fromLive && message.ended.last_seq !== this.lastSeq) {
            return broken(`the feed ended at seq ${message.ended.last_seq}, but the last event received was ${this.lastSeq}`);
        }
        this.messages.push(message);
    }
    finish(closed) {
        if (this.closed)
            return;
        this.closed = true;
        this.messages.push({ closed });
        this.messages.close();
    }
}
