/**
 * RabbitMQ's ceiling: amqplib on one confirm channel, every message persistent and mandatory, with the
 * properties and headers that AmqpSink sets, each resolved on its confirm (a basic.return before the ack
 * fails it, as in the sink).
 */
import amqplib from "amqplib";
import { amqpHeaders } from "../src/sinks/amqp-headers.js";
import { PUBLISHED_ENVELOPE, type Publisher } from "./published-message.js";

export interface AmqpTarget {
  kind: "amqp";
  /** amqp://user@host:port/vhost, without the password (given apart, from the environment). */
  url: string;
  exchange: string;
  routingKey: string;
}

export async function openAmqpPublisher(target: AmqpTarget, password: string): Promise<Publisher> {
  const url = new URL(target.url);
  url.password = encodeURIComponent(password);
  const model = await amqplib.connect(url.href, { noDelay: true });
  const channel = await model.createConfirmChannel();
  const returned = new Set<string>();
  channel.on("return", (message: amqplib.Message) => returned.add(String(message.properties.messageId)));
  return {
    publish(message, id) {
      return new Promise((resolve, reject) => {
        channel.publish(
          target.exchange,
          target.routingKey,
          message,
          {
            mandatory: true,
            persistent: true,
            contentType: "message/rfc822",
            messageId: id,
            timestamp: Math.floor(Date.now() / 1000),
            headers: amqpHeaders({ ...PUBLISHED_ENVELOPE, id }),
          },
          (error: unknown) => {
            if (error) reject(new Error(`RabbitMQ nacked ${id}`));
            else if (returned.delete(id)) reject(new Error(`RabbitMQ could not route ${id}`));
            else resolve();
          },
        );
      });
    },
    async close() {
      await model.close();
    },
  };
}
