// JSON lines over stdin/stdout: the only channel between the Python driver
// and this Deno process.

const encoder = new TextEncoder();

/** Yield one parsed JSON object per line of stdin until it closes. */
export async function* readMessages() {
  let buffered = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.trim()) yield JSON.parse(line);
    }
  }
}

/** Write one message as a line; loops because writeSync may write less. */
export function send(message) {
  writeAll(encoder.encode(JSON.stringify(message) + "\n"));
}

export function writeAll(bytes) {
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}
