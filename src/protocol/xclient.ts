/**
 * Postfix's XCLIENT and XFORWARD (https://www.postfix.org/XCLIENT_README.html, XFORWARD_README.html):
 * a trusted front end (a proxy, a content filter) tells us who the real client is. Values are xtext;
 * "[UNAVAILABLE]" and "[TEMPUNAVAIL]" mean the value is not known.
 */
import { isIP } from "node:net";
import { decodeXtext, type EsmtpParams } from "./commands.js";
import type { Forwarded, ServerInfo } from "./context.js";
import { SmtpError } from "./errors.js";

export const XCLIENT_ATTRIBUTES = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT"];
export const XFORWARD_ATTRIBUTES = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"];

function attributeValues(
  params: EsmtpParams,
  known: readonly string[],
  command: string,
): Map<string, string> {
  const values = new Map<string, string>();
  for (const keyword in params) {
    if (!known.includes(keyword))
      throw new SmtpError(501, `Error: bad ${command} attribute name: ${keyword}`, "5.5.4");
    const raw = params[keyword];
    if (typeof raw !== "string") throw new SmtpError(501, `Error: ${keyword} needs a value`, "5.5.4");
    const unknown = raw.toUpperCase() === "[UNAVAILABLE]" || raw.toUpperCase() === "[TEMPUNAVAIL]";
    values.set(keyword, unknown ? "" : decodeXtext(raw, keyword, 255));
  }
  if (values.size === 0) throw new SmtpError(501, `Syntax: ${command} attribute=value...`, "5.5.4");
  return values;
}

function address(value: string, keyword: string): string {
  const ip = value.toUpperCase().startsWith("IPV6:") ? value.slice(5) : value;
  if (ip !== "" && isIP(ip) === 0) throw new SmtpError(501, `Error: bad ${keyword} address`, "5.5.4");
  return ip;
}

function port(value: string, keyword: string): number {
  if (value === "") return 0;
  const number = Number(value);
  if (!/^[0-9]{1,5}$/.test(value) || number > 65535)
    throw new SmtpError(501, `Error: bad ${keyword}`, "5.5.4");
  return number;
}

/** XCLIENT: replaces what the session knows of its client (the caller then starts the session over). */
export function applyXclient(params: EsmtpParams, server: ServerInfo): void {
  const values = attributeValues(params, XCLIENT_ATTRIBUTES, "XCLIENT");
  // Check everything before changing anything: a bad attribute leaves the session as it was.
  const addr = values.has("ADDR") ? address(values.get("ADDR") as string, "ADDR") : undefined;
  const destAddr = values.has("DESTADDR") ? address(values.get("DESTADDR") as string, "DESTADDR") : undefined;
  const remotePort = values.has("PORT") ? port(values.get("PORT") as string, "PORT") : undefined;
  const localPort = values.has("DESTPORT") ? port(values.get("DESTPORT") as string, "DESTPORT") : undefined;
  const proto = values.get("PROTO")?.toUpperCase();
  if (proto !== undefined && proto !== "" && proto !== "SMTP" && proto !== "ESMTP") {
    throw new SmtpError(501, "Error: PROTO must be SMTP or ESMTP", "5.5.4");
  }
  if (addr !== undefined) server.remoteIp = addr;
  if (values.has("NAME")) server.remoteHost = values.get("NAME") || server.remoteIp;
  else if (addr !== undefined) server.remoteHost = addr;
  if (remotePort !== undefined) server.remotePort = remotePort;
  if (destAddr !== undefined) server.localIp = destAddr;
  if (localPort !== undefined) server.localPort = localPort;
  if (values.has("HELO")) server.helo = values.get("HELO") as string;
  if (proto !== undefined) server.heloCommand = proto === "SMTP" ? "HELO" : proto === "ESMTP" ? "EHLO" : "";
  if (values.has("LOGIN")) {
    const login = values.get("LOGIN") as string;
    server.authenticationId = login;
    server.authorizationId = login;
    server.authenticated = login === "" ? null : new Date();
    server.authMechanism = login === "" ? "" : "XCLIENT";
  }
}

/** XFORWARD: what the original client was, recorded for the next transaction. */
export function parseXforward(params: EsmtpParams, into: Forwarded): Forwarded {
  const values = attributeValues(params, XFORWARD_ATTRIBUTES, "XFORWARD");
  const next: Forwarded = { ...into };
  for (const [keyword, value] of values) {
    if (keyword === "ADDR") address(value, keyword);
    if (keyword === "PORT") port(value, keyword);
    next[keyword.toLowerCase() as keyof Forwarded] = value;
  }
  return next;
}

export type { Forwarded } from "./context.js";
