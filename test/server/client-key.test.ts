import assert from "node:assert/strict";
import { test } from "node:test";
import { clientKey } from "../../src/server/client-key.js";

test("clientKey: IPv4 as it is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64", () => {
  assert.equal(clientKey("192.0.2.7"), "192.0.2.7");
  assert.equal(clientKey("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(clientKey("::FFFF:192.0.2.7"), "192.0.2.7");
  assert.equal(clientKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(clientKey("2001:0db8:0001:0002::1"), "2001:db8:1:2::/64");
  assert.equal(clientKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(clientKey("2001:db8:1::5:6"), "2001:db8:1:0::/64");
  assert.equal(clientKey("::1"), "0:0:0:0::/64");
  assert.equal(clientKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(clientKey("2001:db8:1:2::ffff:1.2.3.4"), "2001:db8:1:2::/64");
  assert.equal(clientKey(""), "");
});

test("clientKey: two addresses of one /64 share a key, of two /64s do not", () => {
  assert.equal(clientKey("2001:db8:a:b::1"), clientKey("2001:db8:a:b:ffff:ffff:ffff:ffff"));
  assert.notEqual(clientKey("2001:db8:a:b::1"), clientKey("2001:db8:a:c::1"));
});

test("clientKey: a '::' late in the address stands for as few groups as it must", () => {
  assert.equal(clientKey("1::2:3:4:5:6:7"), "1:0:2:3::/64");
  assert.equal(clientKey("1:2::3:4:5:6:7"), "1:2:0:3::/64");
  assert.equal(clientKey("1::3:4:5:6:1.2.3.4"), "1:0:3:4::/64");
});
