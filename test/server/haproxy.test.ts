/** HAProxy (Debian) in front of mailgate with send-proxy-v2: the hooks see the real client. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SmtpServer } from "../../src/server/server.js";
import { freePort, RawClient, silentLogger } from "../helpers/clients.js";
import { needProgram } from "../helpers/programs.js";

test("HAProxy with send-proxy-v2 in front of a proxyPorts listener", async (t) => {
  const haproxy = needProgram(t, "haproxy");
  if (!haproxy) return;
  const [backend, frontend] = [await freePort(), await freePort()];
  const seen: string[] = [];
  const server = new SmtpServer({
    ports: backend,
    proxyPorts: String(backend),
    hostname: "mx.test",
    logger: silentLogger,
    loggerSeverity: "fatal",
    onConnect(ctx) {
      seen.push(`${ctx.server.remoteIp}:${ctx.server.remotePort} via ${ctx.server.proxy?.version}`);
    },
  });
  await server.start();
  t.after(() => server.stop({ gracefully: false }));
  const dir = await mkdtemp(join(tmpdir(), "mailgate-haproxy-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, "haproxy.cfg");
  await writeFile(
    config,
    [
      "defaults",
      "  mode tcp",
      "  timeout connect 5s",
      "  timeout client 30s",
      "  timeout server 30s",
      "frontend smtp",
      `  bind 127.0.0.1:${frontend}`,
      "  default_backend mailgate",
      "backend mailgate",
      `  server mg 127.0.0.1:${backend} send-proxy-v2`,
      "",
    ].join("\n"),
  );
  const child = spawn(haproxy, ["-db", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
  t.after(() => child.kill("SIGKILL"));
  // HAProxy is ready when its frontend accepts connections.
  let client: RawClient | undefined;
  for (let i = 0; i < 100 && !client; i++) {
    client = await RawClient.greeted(frontend).catch(async () => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return undefined;
    });
  }
  assert.ok(client, "HAProxy answered");
  assert.match(await client.command("EHLO through.haproxy"), /^250-mx\.test/);
  const clientPort = client.socket.localPort;
  client.close();
  assert.match(seen[0] ?? "", /^127\.0\.0\.1:\d+ via 2$/);
  const port = Number(/:(\d+) /.exec(seen[0] ?? "")?.[1]);
  assert.equal(port, clientPort, "the client's own port, not HAProxy's");
});
