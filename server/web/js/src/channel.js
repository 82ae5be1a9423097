// A bounded queue of messages between a socket's callbacks and an application that reads
// them with `await next()` or `for await`. Listeners added with `on` see every message as it
// arrives. An application that only listens sets the limit to 0, and nothing is queued.
/** Thrown by `next()` when the application fell `limit` messages behind. */
export class OverflowError extends Error {
    constructor(limit) {
        super(`more than ${limit} messages were waiting to be read: read them (or raise maxQueued)`);
        this.name = "OverflowError";
    }
}
export class Channel {
    limit;
    items = [];
    head = 0;
    waiters = [];
    failure = null;
    done = false;
    listeners = new Set();
    constructor(limit) {
        this.limit = limit;
    }
    /** Call `listener` with every message from now on; returns a function that removes it. */
    on(listener) {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
    }
    push(item) {
        for (const l of this.listeners)
            l(item);
        if (this.done)
            return;
        const waiter = this.waiters.shift();
        if (waiter)
            return waiter({ value: item, done: false });
        if (this.limit === 0)
            return;
        if (this.items.length - this.head >= this.limit) {
            this.failure = new OverflowError(this.limit);
            this.items.length = 0;
            this.head = 0;
            return;
        }
        this.items.push(item);
    }
    /** No more messages: waiting readers get `done`. */
    close() {
        this.done = true;
        for (const w of this.waiters.splice(0))
            w({ value: undefined, done: true });
    }
    /** The next message, or undefined once the channel is closed and drained. */
    async next() {
        const r = await this.nextResult();
        return r.done ? undefined : r.value;
    }
    nextResult() {
        if (this.failure) {
            const f = this.failure;
            this.failure = null;
            return Promise.reject(f);
        }
        if (this.head < this.items.length) {
            const value = this.items[this.head++];
            if (this.head > 1024 && this.head * 2 > this.items.length) {
                this.items.splice(0, this.head);
                this.head = 0;
            }
            return Promise.resolve({ value, done: false });
        }
        if (this.done)
            return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
    }
    [Symbol.asyncIterator]() {
        return { next: () => this.nextResult() };
    }
}
