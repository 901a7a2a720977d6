/**
 * Cookbook: several ports and addresses (the seed's "Multiple ports and addresses"). `hosts` lists the
 * addresses (IPv4, IPv6, host names, or "*" for every local address); `ports` gives one item per host, the
 * last one reused, and "a:b" binds several ports on one host. After start(), server.addresses and
 * server.ports say what is really bound (the real port where 0 asked for any free one).
 */
import { SmtpServer, type SmtpServerOptions } from "mailgate";

/** 25 and 587 on every loopback address given; override `ports`/`hosts` to taste. */
export function createMultiPortServer(options: SmtpServerOptions = {}): SmtpServer {
  return new SmtpServer({ hosts: "127.0.0.1, ::1", ports: "2525:2587", ...options });
}

// Run directly (node ports-and-hosts.js), it serves until Ctrl-C; imported, it only defines the server.
if (process.argv[1] === import.meta.filename) {
  const server = createMultiPortServer();
  await server.start();
  console.log(`listening on ${server.addresses.join(", ")}`);
}
