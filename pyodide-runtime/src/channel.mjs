// The channel between the Python driver and this Deno host: JSON lines over a
// loopback TCP connection the host opens at start, never stdio.
//
// Why not stdio: every Web Worker in the process can write to fd 1 and read
// fd 0 (Deno.stdout, process.stdout, console, node:fs with fd 1), so a guest
// could forge the host's messages or read other runs' jobs. A socket opened
// here lives in this isolate's resource table only: workers have no handle to
// it, and their `net` permission (the egress gate only) stops them dialling
// the driver themselves.

const encoder = new TextEncoder();

/** Read all of stdin (the driver writes one JSON object, then closes it). */
export async function readStdin() {
  return JSON.parse(await new Response(Deno.stdin.readable).text());
}

export class Channel {
  #conn;
  #writing = Promise.resolve();

  constructor(conn) {
    this.#conn = conn;
  }

  /** Connect to the driver on 127.0.0.1:port and prove who we are with its nonce. */
  static async connect(port, nonce) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const channel = new Channel(conn);
    channel.send({ t: "hello", nonce });
    return channel;
  }

  /** Queue one message; writes go out in order. */
  send(message) {
    const bytes = encoder.encode(JSON.stringify(message) + "\n");
    this.#writing = this.#writing.then(() => writeAll(this.#conn, bytes));
    this.#writing.catch(() => Deno.exit(1)); // the driver is gone: nothing left to do
  }

  /** Wait until every queued message is written. */
  flush() {
    return this.#writing;
  }

  /** Yield one parsed JSON object per line until the driver closes the connection. */
  async *messages() {
    let buffered = "";
    for await (const chunk of this.#conn.readable.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim()) yield JSON.parse(line);
      }
    }
  }
}

async function writeAll(conn, bytes) {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
