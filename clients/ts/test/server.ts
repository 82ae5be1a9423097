// A real tickforge-server for the tests: the binary, started on a free loopback port with its
// own data directory, and stopped afterwards. TICKFORGE_SERVER names the binary; otherwise
// the workspace's debug build is used.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export interface TestServer {
  /** http://127.0.0.1:PORT */
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export function serverBinary(): string {
  return process.env.TICKFORGE_SERVER ?? fileURLToPath(new URL("../../../../target/debug/tickforge-server", import.meta.url));
}

export async function startServer(args: string[] = []): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "tickforge-ts-"));
  const child = spawn(serverBinary(), ["--listen", "127.0.0.1:0", "--data-dir", dir, ...args], {
    stdio: ["ignore", "pipe", process.env.TICKFORGE_TEST_LOG ? "inherit" : "ignore"],
  });
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the server printed no address within 20 s")), 20_000);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`the server exited with ${code}`)));
    lines.once("line", (line) => {
      clearTimeout(timer);
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) resolve(m[1]!);
      else reject(new Error(`unexpected first line: ${line}`));
    });
  });
  // Keep reading what else it prints.
  lines.on("line", () => {});
  return {
    url,
    child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolve after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Wait until `check` is true, polling every 20 ms; fail after `ms` with `what`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}
