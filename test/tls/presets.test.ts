/**
 * Cipher presets: each builds a secure context and handshakes; the default refuses TLS 1.1 and
 * accepts TLS 1.2 and 1.3; invalid custom values fail with one sentence naming the option. (ECDHE
 * preference, groups and ECDSA under every preset: hardening.test.ts.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import tls from "node:tls";
import { generateSelfSignedCertificate } from "../../src/tls/certificates.js";
import {
  DEFAULT_TLS_PRESET,
  FFDHE2048,
  resolveTlsSettings,
  TLS_PRESET_NAMES,
  TLS_PRESETS,
  validateTlsCiphers,
  validateTlsMinVersion,
} from "../../src/tls/presets.js";
import { handshake, listen } from "./tls-helpers.js";

const certificate = generateSelfSignedCertificate({ cn: "localhost.local" });

test("the presets: the seed's suites with ECDHE first and ECDSA twins; advancedPlus by default", () => {
  assert.deepEqual(TLS_PRESET_NAMES, ["advancedPlus", "advanced", "broad", "widest", "legacy"]);
  assert.equal(DEFAULT_TLS_PRESET, "advancedPlus");
  assert.deepEqual(resolveTlsSettings(), TLS_PRESETS.advancedPlus);
  assert.deepEqual(TLS_PRESETS.advancedPlus, {
    ciphers:
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256",
    minVersion: "TLSv1.2",
  });
  // The seed's strings (lib/midi-smtp-server/tls-transport.rb): each preset has exactly their suites,
  // plus an ECDHE-ECDSA twin for each ECDHE-RSA suite.
  const seedAdvancedPlus =
    "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256";
  const seedAdvanced = `${seedAdvancedPlus}:DHE-RSA-AES256-SHA256:DHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256`;
  const seed = {
    advancedPlus: seedAdvancedPlus,
    advanced: seedAdvanced,
    broad: `${seedAdvanced}:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA`,
    widest: `${seedAdvanced}:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-SHA256:AES128-SHA256:AES256-SHA:AES128-SHA:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA`,
    legacy: `${seedAdvanced}:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-SHA256:AES128-SHA256:AES256-SHA:AES128-SHA:DES-CBC3-SHA:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA`,
  };
  const order = (suite: string) =>
    suite.startsWith("ECDHE-") ? 0 : suite.startsWith("DHE-") ? 1 : suite.includes("DES") ? 3 : 2;
  for (const name of TLS_PRESET_NAMES) {
    const suites = TLS_PRESETS[name].ciphers.replace(/:@SECLEVEL=0$/, "").split(":");
    const twins = seed[name]
      .split(":")
      .flatMap((suite) =>
        suite.startsWith("ECDHE-RSA-") ? [suite, suite.replace("-RSA-", "-ECDSA-")] : [suite],
      );
    assert.deepEqual([...suites].sort(), twins.sort(), `${name}: the seed's suites and the ECDSA twins`);
    const classes = suites.map(order);
    assert.deepEqual(classes, [...classes].sort(), `${name}: ECDHE, then DHE, then RSA kx, then 3DES`);
  }
  assert.equal(TLS_PRESETS.broad.minVersion, "TLSv1.2");
  assert.equal(TLS_PRESETS.widest.minVersion, "TLSv1.1");
  assert.equal(TLS_PRESETS.legacy.minVersion, "TLSv1.1");
  assert.throws(() => {
    (TLS_PRESETS.advancedPlus as { minVersion: string }).minVersion = "TLSv1";
  }, TypeError);
});

for (const name of TLS_PRESET_NAMES) {
  test(`preset ${name}: builds a secure context and handshakes with TLS 1.3 and TLS 1.2`, async (t) => {
    const { cert, key } = await certificate;
    const preset = TLS_PRESETS[name];
    assert.ok(tls.createSecureContext({ cert, key, ...preset }));
    const port = await listen(
      t,
      tls.createServer({ cert, key, ...preset }, (socket) => socket.end()),
    );
    const tls13 = await handshake(port, { ca: cert, servername: "localhost.local" });
    assert.ok(tls13.ok, JSON.stringify(tls13));
    assert.equal(tls13.protocol, "TLSv1.3", "TLS 1.3 stays enabled with its default suites");
    assert.match(tls13.cipher, /^TLS_/);
    const tls12 = await handshake(port, { ca: cert, servername: "localhost.local", maxVersion: "TLSv1.2" });
    assert.ok(tls12.ok, JSON.stringify(tls12));
    assert.equal(tls12.protocol, "TLSv1.2");
    assert.ok(preset.ciphers.split(":").includes(tls12.cipher), `${tls12.cipher} comes from the preset`);
  });
}

test("the default preset refuses TLS 1.1 and ciphers outside its list", async (t) => {
  const { cert, key } = await certificate;
  const port = await listen(
    t,
    tls.createServer({ cert, key, ...resolveTlsSettings(), dhparam: FFDHE2048 }, (socket) => socket.end()),
  );
  const tls11 = await handshake(port, {
    ca: cert,
    servername: "localhost.local",
    minVersion: "TLSv1.1",
    maxVersion: "TLSv1.1",
    ciphers: "DEFAULT:@SECLEVEL=0",
  });
  assert.equal(tls11.ok, false);
  const cbc = await handshake(port, {
    ca: cert,
    servername: "localhost.local",
    maxVersion: "TLSv1.2",
    ciphers: "ECDHE-RSA-AES128-SHA",
  });
  assert.equal(cbc.ok, false);
  const dhe = await handshake(port, {
    ca: cert,
    servername: "localhost.local",
    maxVersion: "TLSv1.2",
    ciphers: "DHE-RSA-AES128-GCM-SHA256",
  });
  assert.ok(dhe.ok && dhe.cipher === "DHE-RSA-AES128-GCM-SHA256", "DHE suites work (ffdhe2048)");
});

test("the legacy presets really accept a TLS 1.1 client (security level 0)", async (t) => {
  const { cert, key } = await certificate;
  const port = await listen(
    t,
    tls.createServer({ cert, key, ...TLS_PRESETS.widest }, (socket) => socket.end()),
  );
  const tls11 = await handshake(port, {
    ca: cert,
    servername: "localhost.local",
    minVersion: "TLSv1.1",
    maxVersion: "TLSv1.1",
    ciphers: "DEFAULT:@SECLEVEL=0",
  });
  assert.ok(tls11.ok, JSON.stringify(tls11));
  assert.equal(tls11.protocol, "TLSv1.1");
});

test("custom ciphers and minimum version replace the preset's parts", () => {
  assert.deepEqual(resolveTlsSettings({ preset: "broad", minVersion: "TLSv1.3" }), {
    ciphers: TLS_PRESETS.broad.ciphers,
    minVersion: "TLSv1.3",
  });
  assert.deepEqual(resolveTlsSettings({ ciphers: " ECDHE-RSA-AES128-GCM-SHA256 " }), {
    ciphers: "ECDHE-RSA-AES128-GCM-SHA256",
    minVersion: "TLSv1.2",
  });
  assert.equal(validateTlsCiphers("HIGH:!aNULL"), "HIGH:!aNULL");
  assert.equal(validateTlsMinVersion("TLSv1.3"), "TLSv1.3");
});

test("an invalid cipher string, version or preset fails with one sentence naming the option", () => {
  const oneSentence = (option: string) => (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.ok(error.message.startsWith(`Invalid ${option} `), error.message);
    assert.match(error.message, /^[^\n]+\.$/, "one line, ending with a full stop");
    return true;
  };
  assert.throws(() => validateTlsCiphers("NOT-A-CIPHER"), oneSentence("tlsCiphers"));
  assert.throws(() => resolveTlsSettings({ ciphers: "FOO:BAR" }), oneSentence("tlsCiphers"));
  assert.throws(() => resolveTlsSettings({ ciphers: "" }), oneSentence("tlsCiphers"));
  assert.throws(() => resolveTlsSettings({ ciphers: ":" }), oneSentence("tlsCiphers"));
  assert.throws(() => resolveTlsSettings({ minVersion: "TLSv1_2" }), oneSentence("tlsMinVersion"));
  assert.throws(() => resolveTlsSettings({ minVersion: "SSLv3" }), oneSentence("tlsMinVersion"));
  assert.throws(() => resolveTlsSettings({ preset: "paranoid" }), oneSentence("tlsPreset"));
  assert.throws(() => resolveTlsSettings({ preset: "toString" }), oneSentence("tlsPreset"));
  assert.throws(() => validateTlsCiphers("NOT-A-CIPHER"), /no cipher match/);
});
