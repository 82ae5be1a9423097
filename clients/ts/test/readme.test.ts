// The README's "use it from your own game" lines, run as written against the real server:
// the block is taken from README.md, pointed at the test's server and run as a module.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import { startServer, until, type TestServer } from "./server.js";

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("the README's TypeScript lines run as written", { timeout: 60_000 }, async () => {
  const readme = readFileSync(fileURLToPath(new URL("../../../../README.md", import.meta.url)), "utf8");
  const block = /## Use it from your own game[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, "README.md has the block");
  const sdk = pathToFileURL(fileURLToPath(new URL("../src/index.js", import.meta.url))).href;
  const source = block
    .replace(`from "tickforge-client"`, `from ${JSON.stringify(sdk)}`)
    .replace(`const url = "http://127.0.0.1:7878";`, `const url = ${JSON.stringify(server.url)};`)
    .replaceAll("console.log(", "globalThis.readmeOut.push(");
  assert.notEqual(source, block, "the lines were pointed at the test server");
  const js = ts.transpileModule(source + "\nexport { session };\n", {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const out: unknown[] = [];
  (globalThis as unknown as { readmeOut: unknown[] }).readmeOut = out;
  const module = (await import(`data:text/javascript,${encodeURIComponent(js)}`)) as { session: { close(): void } };
  const outcome = out[0] as object;
  assert.ok("accepted" in outcome || "rejected" in outcome, `an outcome: ${JSON.stringify(outcome)}`);
  await until("positions from the mirror", () => out.length > 5);
  const pos = out[out.length - 1] as { x: number; y: number };
  assert.ok(Number.isInteger(pos.x) && Number.isInteger(pos.y), `a position: ${JSON.stringify(pos)}`);
  module.session.close();
});
