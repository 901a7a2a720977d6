/**
 * AUTH through a session without sockets (RFC 4954): when it may be given, the SASL exchange's replies,
 * the onAuth hook's verdict and what the session records, failures counted per session and per client
 * address, and the secrets never logged.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { SessionContext } from "../../src/protocol/context.js";
import { SmtpError } from "../../src/protocol/errors.js";
import type { SessionHooks } from "../../src/protocol/hooks.js";
import type { AuthFailureLimit, SessionConfig } from "../../src/protocol/session-config.js";
import { MAX_SASL_LINE_OCTETS } from "../../src/sasl/mechanism.js";
import { observerOf } from "../helpers/refusal.js";
import { openSession, TEST_CONFIG } from "../helpers/session-harness.js";

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const PLAIN = (user: string, password: string, authz = "") => b64(`${authz}\0${user}\0${password}`);

const OK = "235 2.7.0 Authentication successful\r\n";
const INVALID = "535 5.7.8 Authentication credentials invalid\r\n";
const TEMPORARY = "454 4.7.0 Temporary authentication failure\r\n";
const TOO_MANY = "421 4.7.0 mx.test Error: too many authentication failures\r\n";
const ADDRESS_HELD =
  "421 4.7.0 mx.test Error: too many authentication failures from your address, try again later\r\n";

/** The onAuth of these tests: alice/secret is right; the hook's return value is `returns`. */
function checker(returns?: unknown): SessionHooks["onAuth"] {
  return (_ctx, _authz, user, secret) => {
    if (user !== "alice" || secret !== "secret") throw SmtpError.code(535);
    return returns as string | undefined;
  };
}

async function greeted(
  options: {
    auth?: Partial<SessionConfig["auth"]>;
    hooks?: Partial<SessionHooks>;
    config?: Partial<SessionConfig>;
  } = {},
) {
  const t = await openSession({
    config: {
      ...options.config,
      auth: { ...TEST_CONFIG.auth, mode: "optional", overPlaintext: true, maxFailures: 3, ...options.auth },
    },
    hooks: { onAuth: checker(), ...options.hooks },
  });
  assert.match(await t.send("EHLO client.example\r\n"), /^250-/);
  return t;
}

describe("when AUTH may be given", () => {
  test("forbidden: 502; before EHLO: 503; in a transaction: 503; once authenticated: 503", async () => {
    const off = await openSession();
    await off.send("EHLO client.example\r\n");
    assert.equal(
      await off.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`),
      "502 5.5.1 Command not implemented\r\n",
    );
    const t = await openSession({
      config: { auth: { ...TEST_CONFIG.auth, mode: "optional", overPlaintext: true } },
      hooks: { onAuth: checker() },
    });
    assert.equal(
      await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`),
      "503 5.5.1 Error: send EHLO first\r\n",
    );
    await t.send("EHLO client.example\r\n");
    await t.send("MAIL FROM:<a@b.example>\r\n");
    assert.equal(
      await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`),
      "503 5.5.1 Error: AUTH is not allowed in a transaction\r\n",
    );
    await t.send("RSET\r\n");
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), OK);
    assert.equal(
      await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`),
      "503 5.5.1 Error: already authenticated\r\n",
    );
  });

  test("without TLS and without authOverPlaintext: 538, and the hook is not asked", async () => {
    let asked = false;
    const t = await greeted({
      auth: { overPlaintext: false },
      hooks: {
        onAuth: () => {
          asked = true;
        },
      },
    });
    assert.equal(
      await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`),
      "538 5.7.11 Error: authentication needs an encrypted connection (STARTTLS)\r\n",
    );
    assert.equal(asked, false);
    t.ctx.server.encrypted = new Date(); // as after STARTTLS
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), OK);
  });

  test("a mechanism not offered, or unknown, is 504; a missing one is 501", async () => {
    const t = await greeted({ auth: { mechanisms: ["PLAIN"] } });
    assert.equal(await t.send("AUTH LOGIN\r\n"), "504 5.5.4 Unrecognized authentication type\r\n");
    assert.equal(await t.send("AUTH KERBEROS_V4\r\n"), "504 5.5.4 Unrecognized authentication type\r\n");
    assert.equal(await t.send("AUTH\r\n"), "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
    assert.equal(await t.send(`AUTH plain ${PLAIN("alice", "secret")}\r\n`), OK, "the name in any case");
  });
});

describe("the exchange", () => {
  test("with an initial response: 235, and the session records who authenticated, how and when", async () => {
    const t = await greeted();
    const before = Date.now();
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), OK);
    const { server } = t.ctx;
    assert.equal(server.authenticationId, "alice");
    assert.equal(server.authorizationId, "alice", "the user itself when nothing else is named");
    assert.equal(server.authMechanism, "PLAIN");
    assert.ok(server.authenticated instanceof Date && server.authenticated.getTime() >= before);
    assert.ok(t.logs.includes("info: Authenticated alice with PLAIN"), t.logs.join("\n"));
  });

  test("without one: a 334 with an empty challenge, then the response", async () => {
    const t = await greeted();
    assert.equal(await t.send("AUTH PLAIN\r\n"), "334 \r\n");
    assert.equal(await t.send(`${PLAIN("alice", "secret")}\r\n`), OK);
  });

  test("LOGIN: two 334 challenges, Username: and Password:", async () => {
    const t = await greeted();
    assert.equal(await t.send("AUTH LOGIN\r\n"), `334 ${b64("Username:")}\r\n`);
    assert.equal(await t.send(`${b64("alice")}\r\n`), `334 ${b64("Password:")}\r\n`);
    assert.equal(await t.send(`${b64("secret")}\r\n`), OK);
    assert.equal(t.ctx.server.authMechanism, "LOGIN");
  });

  test("authorizationId: the hook's string, else the identity the client asked for, else the user", async () => {
    const named = await greeted({ hooks: { onAuth: checker("boss") } });
    await named.send(`AUTH PLAIN ${PLAIN("alice", "secret", "admin")}\r\n`);
    assert.equal(named.ctx.server.authorizationId, "boss");
    const asked = await greeted({ hooks: { onAuth: checker("") } });
    await asked.send(`AUTH PLAIN ${PLAIN("alice", "secret", "admin")}\r\n`);
    assert.equal(asked.ctx.server.authorizationId, "admin");
    const plain = await greeted({ hooks: { onAuth: checker(42) } });
    await plain.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`);
    assert.equal(plain.ctx.server.authorizationId, "alice", "a value that is not a string is not a name");
    assert.equal(plain.ctx.server.authenticationId, "alice");
  });

  test("the hook is given the requested identity, the user, the secret, the mechanism and the credentials", async () => {
    const calls: unknown[][] = [];
    const t = await greeted({
      hooks: {
        onAuth: (ctx: SessionContext, ...rest: unknown[]) => {
          calls.push([ctx === t.ctx, ...rest.slice(0, 4), (rest[4] as { mechanism: string }).mechanism]);
        },
      },
    });
    await t.send(`AUTH PLAIN ${PLAIN("alice", "s3cret", "admin")}\r\n`);
    assert.deepEqual(calls, [[true, "admin", "alice", "s3cret", "PLAIN", "PLAIN"]]);
  });

  test("'*' cancels (501 5.0.0); a malformed response is 501 5.5.2; both are failures", async () => {
    const t = await greeted({ auth: { maxFailures: 10 } });
    await t.send("AUTH PLAIN\r\n");
    assert.equal(await t.send("*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
    await t.send("AUTH PLAIN\r\n");
    assert.match(await t.send("not base64!\r\n"), /^501 5\.5\.2 /);
    assert.deepEqual(
      t.logs.filter((line) => line.startsWith("warn: ")),
      ["warn: Authentication failed: 501 5.0.0", "warn: Authentication failed: 501 5.5.2"],
    );
    assert.equal(
      await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`),
      OK,
      "and AUTH may be tried again",
    );
  });

  test("a response line over the SASL limit is refused as too long, never read as a command", async () => {
    const t = await greeted();
    await t.send("AUTH PLAIN\r\n");
    assert.equal(
      await t.send(`${"A".repeat(MAX_SASL_LINE_OCTETS + 1)}\r\n`),
      "500 5.5.6 Authentication exchange line is too long\r\n",
    );
    assert.equal(await t.send("NOOP\r\n"), "250 2.0.0 Ok\r\n");
    await t.send("AUTH PLAIN\r\n");
    assert.equal(await t.send(`${PLAIN("alice", "secret").padEnd(0)}\r\n`), OK);
  });

  test("a pipelined AUTH that needs a challenge ends the session (554); one completed by its initial response does not", async () => {
    const t = await greeted();
    assert.equal(
      await t.send("AUTH PLAIN\r\nNOOP\r\n"),
      "554 5.5.0 Error: SMTP protocol synchronization\r\n",
    );
    assert.equal(t.closed, true);
    const u = await greeted();
    assert.equal(await u.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\nNOOP\r\n`), `${OK}250 2.0.0 Ok\r\n`);
  });
});

describe("failures", () => {
  test("wrong credentials: 535, logged with the user and never the secret; the third ends the session", async () => {
    const failed: SessionContext[] = [];
    const t = await greeted({ hooks: { observer: observerOf({ authFailed: (ctx) => failed.push(ctx) }) } });
    for (let i = 1; i <= 2; i++) {
      assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "wrong")}\r\n`), INVALID);
      assert.equal(t.closed, false);
    }
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "wrong")}\r\n`), `${INVALID}${TOO_MANY}`);
    assert.equal(t.closed, true);
    assert.equal(failed.length, 3);
    assert.ok(failed.every((ctx) => ctx === t.ctx));
    assert.deepEqual(
      t.logs.filter((line) => line.startsWith("warn: ")),
      Array(3).fill('warn: Authentication failed for "alice": 535 5.7.8'),
    );
    assert.ok(!t.logs.join("\n").includes("wrong"), "the secret is never logged");
    assert.equal(t.ctx.server.authenticated, null);
  });

  test("a hook that throws something other than an SmtpError: 454, a failure of ours, logged with its error", async () => {
    const failure = new Error("directory down");
    const errors: unknown[] = [];
    const t = await greeted({
      hooks: {
        onAuth: () => {
          throw failure;
        },
        log: (_ctx, severity, message, error) => {
          if (severity === "warn") errors.push([message, error]);
        },
      },
    });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), TEMPORARY);
    assert.deepEqual(errors, [['Authentication failed for "alice": 454 4.7.0', failure]]);
  });

  test("a hook's own SmtpError is the reply, and is not logged as a cause", async () => {
    const causes: unknown[] = [];
    const t = await greeted({
      hooks: {
        onAuth: () => {
          throw new SmtpError(535, "Go away", "5.7.8");
        },
        log: (_ctx, severity, _message, error) => {
          if (severity === "warn") causes.push(error);
        },
      },
    });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), "535 5.7.8 Go away\r\n");
    assert.deepEqual(causes, [undefined]);
  });
});

/** A per-address limit whose answers the test sets, recording what the session asked. */
function limit(behaviour: Partial<AuthFailureLimit> = {}) {
  const calls: string[] = [];
  const held: AuthFailureLimit = {
    isBlocked: () => {
      calls.push("isBlocked");
      return false;
    },
    record: () => {
      calls.push("record");
      return false;
    },
    exclusive: (_ctx, check) => {
      calls.push("exclusive");
      return check();
    },
    ...behaviour,
  };
  return { held, calls };
}

describe("the client's failures across sessions (addressLimit)", () => {
  test("a client already held back gets 421 at AUTH, the hook unasked, the refusal counted", async () => {
    const refused: string[] = [];
    const { held } = limit({ isBlocked: () => true });
    const t = await greeted({
      auth: { addressLimit: held },
      hooks: {
        observer: observerOf({
          connectionRefused: (reason, address) => refused.push(`${reason} ${address}`),
        }),
      },
    });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), ADDRESS_HELD);
    assert.equal(t.closed, true);
    assert.deepEqual(refused, ["auth-failures-per-ip 127.0.0.1"]);
  });

  test("a success is checked inside exclusive() and not recorded", async () => {
    const { held, calls } = limit();
    const t = await greeted({ auth: { addressLimit: held } });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), OK);
    assert.deepEqual(calls, ["isBlocked", "exclusive", "isBlocked"]);
  });

  test("a 5xx failure is recorded; the one that reaches the limit gets its reply, then 421 and a close", async () => {
    let failures = 0;
    const { held, calls } = limit({
      record: () => {
        failures++;
        return failures >= 2;
      },
    });
    const t = await greeted({ auth: { addressLimit: held, maxFailures: 10 } });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "wrong")}\r\n`), INVALID);
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "wrong")}\r\n`), `${INVALID}${ADDRESS_HELD}`);
    assert.equal(t.closed, true);
    assert.equal(failures, 2);
    assert.deepEqual(calls, ["isBlocked", "exclusive", "isBlocked", "isBlocked", "exclusive", "isBlocked"]);
    assert.ok(
      t.logs.includes("warn: Authentication refused from now on: too many failures from this address"),
    );
  });

  test("a 4xx failure (ours) is not recorded against the client", async () => {
    const { held, calls } = limit();
    const t = await greeted({
      auth: { addressLimit: held },
      hooks: {
        onAuth: () => {
          throw new Error("down");
        },
      },
    });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), TEMPORARY);
    assert.ok(!calls.includes("record"));
  });

  test("a limit that cannot say whether the client is held back refuses AUTH for now (454), logged", async () => {
    const { held } = limit({
      isBlocked: () => {
        throw new Error("redis gone");
      },
    });
    const t = await greeted({ auth: { addressLimit: held } });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), TEMPORARY);
    assert.ok(
      t.logs.includes("error: The AUTH failure limit cannot be checked: redis gone"),
      t.logs.join("\n"),
    );
    assert.equal(t.closed, false);
  });

  test("a failure that cannot be recorded is logged, and the session goes on", async () => {
    const { held } = limit({
      record: () => {
        throw new Error("redis gone");
      },
    });
    const t = await greeted({ auth: { addressLimit: held } });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "wrong")}\r\n`), INVALID);
    assert.ok(t.logs.includes("error: An AUTH failure cannot be counted: redis gone"), t.logs.join("\n"));
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), OK);
  });

  test("a check refused its turn: the limit's SmtpError, or 454, not recorded", async () => {
    const busy = limit({ exclusive: () => Promise.reject(new SmtpError(454, "Too many checks", "4.7.0")) });
    const t = await greeted({ auth: { addressLimit: busy.held } });
    assert.equal(await t.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`), "454 4.7.0 Too many checks\r\n");
    assert.ok(t.logs.includes('warn: Authentication failed for "alice": 454 4.7.0'), t.logs.join("\n"));
    const broken = limit({ exclusive: () => Promise.reject(new Error("queue broke")) });
    const u = await greeted({ auth: { addressLimit: broken.held } });
    assert.equal(
      await u.send(`AUTH PLAIN ${PLAIN("alice", "secret")}\r\n`),
      "454 4.7.0 Temporary authentication failure\r\n",
    );
    assert.ok(!broken.calls.includes("record"));
  });
});
