/**
 * Certificates: the seed's CN/SAN derivation, the generated self-signed certificate (parsed by
 * OpenSSL, names, validity, real handshakes that verify it) and loadCertificate's errors.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import tls from "node:tls";
import {
  deriveCertificateNames,
  generateSelfSignedCertificate,
  LOOPBACK_CN,
  loadCertificate,
} from "../../src/tls/certificates.js";
import { ipAddressBytes } from "../../src/tls/der.js";
import { checkIp, handshake, listen, tempDir, writeCertificate } from "./tls-helpers.js";

const DAY = 24 * 60 * 60 * 1000;

test("names: loopback first gives localhost.local and keeps every name in the SAN list", () => {
  assert.deepEqual(deriveCertificateNames(["127.0.0.1"], ["127.0.0.1:2525"]), {
    cn: "localhost.local",
    san: ["127.0.0.1"],
  });
  assert.deepEqual(deriveCertificateNames(["localhost"], ["127.0.0.1:2525", "[::1]:2525"]), {
    cn: "localhost.local",
    san: ["localhost", "127.0.0.1", "::1"],
  });
  assert.deepEqual(deriveCertificateNames(["::1"], ["[::1]:25"]), { cn: LOOPBACK_CN, san: ["::1"] });
  // The seed's pattern allows zero-padded octets and any letter case.
  assert.equal(deriveCertificateNames(["127.000.000.001"], []).cn, "localhost.local");
  assert.equal(deriveCertificateNames(["LocalHost"], []).cn, "localhost.local");
  // Only exact loopback names: 127.0.0.2 or localhost.example are ordinary names.
  assert.deepEqual(deriveCertificateNames(["127.0.0.2"], ["127.0.0.2:25"]), { cn: "127.0.0.2", san: [] });
});

test("names: otherwise the first name is the CN and leaves the SAN list; '*' is dropped", () => {
  assert.deepEqual(
    deriveCertificateNames(
      ["mail.example.com", "10.0.0.5"],
      ["192.0.2.10:25", "10.0.0.5:25", "192.0.2.10:587"],
    ),
    { cn: "mail.example.com", san: ["10.0.0.5", "192.0.2.10"] },
  );
  assert.deepEqual(deriveCertificateNames(["*"], ["192.0.2.10:25", "127.0.0.1:25", "[2001:db8::1]:25"]), {
    cn: "192.0.2.10",
    san: ["127.0.0.1", "2001:db8::1"],
  });
  assert.deepEqual(deriveCertificateNames(["*"], ["127.0.0.1:25", "192.0.2.10:25"]), {
    cn: "localhost.local",
    san: ["127.0.0.1", "192.0.2.10"],
  });
  // Nothing but "*" (the seed would fail here): the loopback name.
  assert.deepEqual(deriveCertificateNames(["*"], []), { cn: "localhost.local", san: [] });
  // Bare IPs are accepted as addresses too.
  assert.deepEqual(deriveCertificateNames([], ["2001:db8::1", "192.0.2.1"]), {
    cn: "2001:db8::1",
    san: ["192.0.2.1"],
  });
});

test("names: the hostname option comes after the hosts, when it can be a certificate name", () => {
  assert.deepEqual(deriveCertificateNames(["127.0.0.1"], [], undefined, undefined, "MX.Example.COM."), {
    cn: "localhost.local",
    san: ["127.0.0.1", "mx.example.com"],
  });
  assert.deepEqual(
    deriveCertificateNames(["mail.example.com"], [], undefined, undefined, "mail.example.com"),
    {
      cn: "mail.example.com",
      san: [],
    },
  );
  // Listening on every address: the hostname is the CN.
  assert.deepEqual(deriveCertificateNames(["*"], [], undefined, undefined, "mx.example.com"), {
    cn: "mx.example.com",
    san: [],
  });
  // A hostname that cannot be a subjectAltName is left out rather than failing start().
  assert.deepEqual(deriveCertificateNames(["127.0.0.1"], [], undefined, undefined, "my mail server"), {
    cn: "localhost.local",
    san: ["127.0.0.1"],
  });
  // An explicit CN keeps its SAN list as given.
  assert.deepEqual(deriveCertificateNames(["127.0.0.1"], [], "cn.example.com", undefined, "mx.example.com"), {
    cn: "cn.example.com",
    san: [],
  });
});

test("names: an explicit CN is trimmed and the SAN list is used as given, blanks removed", () => {
  assert.deepEqual(deriveCertificateNames(["127.0.0.1"], ["127.0.0.1:25"], "  mx.example.com ", undefined), {
    cn: "mx.example.com",
    san: [],
  });
  assert.deepEqual(
    deriveCertificateNames(["127.0.0.1"], [], "mx.example.com", [
      "alt1.example.com",
      " alt2.example.com",
      "",
      "alt1.example.com",
    ]),
    { cn: "mx.example.com", san: ["alt1.example.com", "alt2.example.com"] },
  );
  // An empty CN counts as none.
  assert.equal(deriveCertificateNames(["mail.example.com"], [], " ").cn, "mail.example.com");
});

test("a generated certificate parses, names the CN and SANs (IP and DNS), is RSA 2048 and valid ~90 days", async () => {
  const before = Date.now();
  const { cert, key } = await generateSelfSignedCertificate({
    cn: "localhost.local",
    san: ["127.0.0.1", "::1", "localhost", "mail.example.com", "*.example.net", "bücher.example"],
  });
  const x509 = new X509Certificate(cert);
  assert.equal(x509.subject, "CN=localhost.local");
  assert.equal(x509.issuer, "CN=localhost.local");
  assert.equal(
    x509.subjectAltName,
    "DNS:localhost.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:localhost, DNS:mail.example.com, DNS:*.example.net, DNS:xn--bcher-kva.example",
  );
  assert.ok(x509.verify(x509.publicKey), "self-signed: the signature verifies with its own key");
  assert.ok(x509.checkPrivateKey(createPrivateKey(key)));
  assert.equal(x509.publicKey.asymmetricKeyType, "rsa");
  assert.equal(x509.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.equal(x509.ca, false);
  assert.deepEqual(x509.keyUsage, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
  assert.match(x509.serialNumber, /^[0-9A-F]{32}$/);
  assert.ok(x509.checkIP("127.0.0.1") && x509.checkIP("::1") && x509.checkHost("mail.example.com"));
  assert.equal(x509.checkHost("a.example.net"), "*.example.net");
  const from = new Date(x509.validFrom).getTime();
  const to = new Date(x509.validTo).getTime();
  assert.ok(from <= before && from > before - 2 * 60 * 60 * 1000, "valid from a little in the past");
  assert.ok(Math.abs(to - (before + 90 * DAY)) < 60 * 1000, "valid for 90 days");
  assert.match(key, /^-----BEGIN PRIVATE KEY-----\n/);
});

test("keyType ec: an ECDSA P-256 certificate signed with ecdsa-with-SHA256, verified by OpenSSL", async (t) => {
  const { cert, key } = await generateSelfSignedCertificate({ cn: "mx.example.com", keyType: "ec" });
  const x509 = new X509Certificate(cert);
  assert.equal(x509.subjectAltName, "DNS:mx.example.com");
  assert.ok(x509.verify(x509.publicKey), "self-signed: the signature verifies with its own key");
  assert.ok(x509.checkPrivateKey(createPrivateKey(key)));
  assert.equal(x509.publicKey.asymmetricKeyType, "ec");
  assert.equal(x509.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
  if (spawnSync("openssl", ["version"]).status !== 0) {
    t.skip("openssl is not installed");
    return;
  }
  const dir = await tempDir(t);
  const files = await writeCertificate(dir, "ec", { cn: "mx.example.com", keyType: "ec" });
  const verify = spawnSync(
    "openssl",
    ["verify", "-purpose", "sslserver", "-CAfile", files.certPath, files.certPath],
    { encoding: "utf8" },
  );
  assert.equal(verify.status, 0, verify.stderr);
  const text = spawnSync("openssl", ["x509", "-in", files.certPath, "-noout", "-text"], { encoding: "utf8" });
  assert.match(text.stdout, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(text.stdout, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
  // The subjectKeyIdentifier is the SHA-1 of the key's point: the last 65 bytes of a P-256 SPKI.
  const spki = new X509Certificate(files.cert).publicKey.export({ type: "spki", format: "der" });
  const point = spki.subarray(-65);
  const expected = createHash("sha1").update(point).digest("hex").toUpperCase().match(/../g)?.join(":");
  assert.match(text.stdout, new RegExp(`Subject Key Identifier: ?\\n\\s+${expected}\\n`));
});

test("a generated certificate has the requested validity window, and distinct serials", async () => {
  const notBefore = new Date("2020-01-01T00:00:00Z");
  const notAfter = new Date("2051-06-30T12:00:00Z"); // GeneralizedTime from 2050 on
  const a = new X509Certificate(
    (await generateSelfSignedCertificate({ cn: "a.test", notBefore, notAfter })).cert,
  );
  assert.equal(new Date(a.validFrom).toISOString(), notBefore.toISOString());
  assert.equal(new Date(a.validTo).toISOString(), notAfter.toISOString());
  const b = new X509Certificate((await generateSelfSignedCertificate({ cn: "a.test", days: 1 })).cert);
  assert.ok(Math.abs(new Date(b.validTo).getTime() - (Date.now() + DAY)) < 60 * 1000);
  assert.notEqual(a.serialNumber, b.serialNumber);
  await assert.rejects(generateSelfSignedCertificate({ cn: "a.test", days: 0 }), /positive number of days/);
  await assert.rejects(
    generateSelfSignedCertificate({ cn: "a.test", notBefore: notAfter, notAfter: notBefore }),
    /notBefore must come before notAfter/,
  );
  await assert.rejects(generateSelfSignedCertificate({ cn: " " }), /non-empty CN/);
  await assert.rejects(
    generateSelfSignedCertificate({ cn: "a.test", san: ["bad name"] }),
    /Invalid certificate name/,
  );
  await assert.rejects(
    generateSelfSignedCertificate({ cn: "a.test", san: ["1.2.3"] }),
    /Invalid certificate name/,
  );
});

test("IP literals become the right iPAddress bytes", () => {
  assert.deepEqual([...(ipAddressBytes("192.0.2.1") ?? [])], [192, 0, 2, 1]);
  assert.equal(ipAddressBytes("2001:db8::1")?.toString("hex"), "20010db8000000000000000000000001");
  assert.equal(ipAddressBytes("::")?.toString("hex"), "0".repeat(32));
  assert.equal(ipAddressBytes("fe80::1%eth0")?.toString("hex"), "fe800000000000000000000000000001");
  assert.equal(ipAddressBytes("::ffff:192.0.2.1")?.toString("hex"), "00000000000000000000ffffc0000201");
  assert.equal(ipAddressBytes("1:2:3:4:5:6:7:8")?.toString("hex"), "00010002000300040005000600070008");
  assert.equal(ipAddressBytes("localhost"), undefined);
});

test("a real handshake over loopback verifies the generated certificate by name and by IP", async (t) => {
  const names = deriveCertificateNames(["127.0.0.1"], ["127.0.0.1:0"]);
  const { cert, key } = await generateSelfSignedCertificate(names);
  const port = await listen(
    t,
    tls.createServer({ cert, key }, (socket) => socket.end()),
  );

  const byName = await handshake(port, { ca: cert, servername: "localhost.local" });
  assert.ok(byName.ok, JSON.stringify(byName));
  assert.equal(byName.socket.authorized, true);
  assert.equal(byName.subject, "CN=localhost.local");

  const byIp = await handshake(port, { ca: cert, checkServerIdentity: checkIp("127.0.0.1") });
  assert.ok(byIp.ok, JSON.stringify(byIp));

  const wrongName = await handshake(port, { ca: cert, servername: "other.example" });
  assert.ok(!wrongName.ok && wrongName.code === "ERR_TLS_CERT_ALTNAME_INVALID");
  const untrusted = await handshake(port, { servername: "localhost.local" });
  assert.ok(!untrusted.ok && untrusted.code === "DEPTH_ZERO_SELF_SIGNED_CERT");
});

test("openssl agrees: the generated certificate verifies as its own trust anchor for sslserver", async (t) => {
  if (spawnSync("openssl", ["version"]).status !== 0) {
    t.skip("openssl is not installed");
    return;
  }
  const dir = await tempDir(t);
  const files = await writeCertificate(dir, "server", { cn: "mx.example.com", san: ["192.0.2.7"] });
  const verify = spawnSync(
    "openssl",
    ["verify", "-purpose", "sslserver", "-CAfile", files.certPath, files.certPath],
    {
      encoding: "utf8",
    },
  );
  assert.equal(verify.status, 0, verify.stderr);
  const text = spawnSync("openssl", ["x509", "-in", files.certPath, "-noout", "-text"], { encoding: "utf8" });
  assert.match(text.stdout, /Signature Algorithm: sha256WithRSAEncryption/);
  assert.match(text.stdout, /CA:FALSE/);
  assert.match(text.stdout, /DNS:mx\.example\.com, IP Address:192\.0\.2\.7/);
});

test("loadCertificate reads a PEM chain and key and returns the leaf", async (t) => {
  const dir = await tempDir(t);
  const leaf = await writeCertificate(dir, "leaf", { cn: "mx.example.com" });
  const other = await writeCertificate(dir, "other", { cn: "intermediate.example" });
  const chainPath = join(dir, "chain.pem");
  await writeFile(chainPath, `${leaf.cert}${other.cert}`);
  const loaded = await loadCertificate(chainPath, leaf.keyPath);
  assert.equal(loaded.x509.serialNumber, leaf.serial);
  assert.equal(loaded.chain.length, 2);
  assert.equal(loaded.chain[1]?.serialNumber, other.serial);
  assert.ok(tls.createSecureContext({ cert: loaded.cert, key: loaded.key }));
  // A combined file (key and certificate together) works for both paths.
  const combined = join(dir, "combined.pem");
  await writeFile(combined, `${leaf.key}${leaf.cert}`);
  assert.equal((await loadCertificate(combined, combined)).x509.serialNumber, leaf.serial);
});

test("loadCertificate errors: one sentence naming the file and what to do", async (t) => {
  const dir = await tempDir(t);
  const good = await writeCertificate(dir, "good", { cn: "mx.example.com" });
  const other = await writeCertificate(dir, "other", { cn: "mx.example.com" });
  const expired = await writeCertificate(dir, "expired", {
    cn: "mx.example.com",
    notBefore: new Date(Date.now() - 100 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  const future = await writeCertificate(dir, "future", {
    cn: "mx.example.com",
    notBefore: new Date(Date.now() + DAY),
    notAfter: new Date(Date.now() + 100 * DAY),
  });
  const garbage = join(dir, "garbage.pem");
  await writeFile(garbage, "this is not a certificate\n");
  const damaged = join(dir, "damaged.pem");
  await writeFile(damaged, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  const missing = join(dir, "missing.pem");

  const sentence = (pattern: RegExp, path: string) => (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.match(error.message, pattern);
    assert.ok(error.message.includes(`"${path}"`), `names ${path}: ${error.message}`);
    assert.match(error.message, /^[^\n]+\.$/, "one line ending with a full stop");
    return true;
  };
  await assert.rejects(
    loadCertificate(missing, good.keyPath),
    sentence(/^Cannot read the TLS certificate file .*ENOENT.*check tlsCertPath/, missing),
  );
  await assert.rejects(
    loadCertificate(good.certPath, missing),
    sentence(/^Cannot read the TLS private key file .*check tlsKeyPath/, missing),
  );
  await assert.rejects(
    loadCertificate(garbage, good.keyPath),
    sentence(/holds no PEM certificate.*give the certificate chain in PEM/, garbage),
  );
  await assert.rejects(
    loadCertificate(damaged, good.keyPath),
    sentence(/has a damaged certificate/, damaged),
  );
  await assert.rejects(
    loadCertificate(good.certPath, garbage),
    sentence(/holds no PEM private key/, garbage),
  );
  await assert.rejects(
    loadCertificate(good.certPath, good.certPath),
    sentence(/holds no PEM private key/, good.certPath),
  );
  await assert.rejects(
    loadCertificate(good.certPath, other.keyPath),
    sentence(
      /does not match the certificate in .*give the key that the certificate was issued for/,
      other.keyPath,
    ),
  );
  await assert.rejects(
    loadCertificate(expired.certPath, expired.keyPath),
    sentence(/expired on .*renew it/, expired.certPath),
  );
  await assert.rejects(
    loadCertificate(future.certPath, future.keyPath),
    sentence(/is not valid before .*check the system clock/, future.certPath),
  );
  if (process.getuid?.() !== 0) {
    await chmod(good.keyPath, 0o000);
    await assert.rejects(loadCertificate(good.certPath, good.keyPath), sentence(/EACCES/, good.keyPath));
  }
});

test("loadCertificate refuses a passphrase-protected key with advice", async (t) => {
  const dir = await tempDir(t);
  const good = await writeCertificate(dir, "good", { cn: "mx.example.com" });
  const encrypted = createPrivateKey(good.key)
    .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "secret" })
    .toString();
  const encryptedPath = join(dir, "encrypted.key");
  await writeFile(encryptedPath, encrypted);
  await assert.rejects(
    loadCertificate(good.certPath, encryptedPath),
    /is encrypted with a passphrase: give it unencrypted/,
  );
});
