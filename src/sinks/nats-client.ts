/**
 * The values NatsSink takes from the @nats-io clients, in one module that NatsSink loads on its first
 * start: a program that imports mailgate without using NATS does not load the clients (about 10 MB).
 */
export {
  DiscardPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream";
export { Objm } from "@nats-io/obj";
export { connect, credsAuthenticator, headers as natsHeaders } from "@nats-io/transport-node";
