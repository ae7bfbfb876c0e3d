import net from 'node:net';

/**
 * HTTP over a bare socket: exact bytes out, every byte back, parsed by hand. Nothing here repairs a request
 * the way an HTTP client library would.
 */

export interface RawResponse {
  readonly status: number;
  readonly reason: string;
  /** Lower-case names; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface Conversation {
  /** Final responses in order (1xx interim responses are dropped). */
  readonly responses: RawResponse[];
  /** Everything the server sent. */
  readonly received: Buffer;
  /** 'server': the server closed the connection; 'limit': the test gave up waiting (a failure). */
  readonly endedBy: 'server' | 'limit';
  /** Bytes the sender handed to the socket before the first response byte came back. */
  readonly sentBeforeResponse: number;
}

/** What a scripted sender can do with its connection. */
export interface SenderControl {
  readonly socket: net.Socket;
  /** Resolves once the socket has taken `data` (waits for 'drain' when its buffer is full). */
  write(data: string | Buffer): Promise<void>;
  /** True once any response byte or a close arrived. */
  answered(): boolean;
  closed(): boolean;
}

export type Sender = (control: SenderControl) => Promise<void>;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
export { sleep };

/** Parses consecutive HTTP/1.1 responses: forecastd's always carry Content-Length. */
export function parseResponses(data: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) throw new Error(`incomplete response head: ${JSON.stringify(data.subarray(at).toString('latin1'))}`);
    const lines = data.subarray(at, end).toString('latin1').split('\r\n');
    const statusLine = /^HTTP\/1\.1 (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
    if (statusLine === null) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(statusLine[1]);
    // Without a length, a response that closes the connection runs to the close (RFC 9112 6.3): the form
    // of uWebSockets.js 20.57's own refusals (400, 431, 505, with an HTML body).
    const untilClose = headers['content-length'] === undefined && headers['transfer-encoding'] === undefined && headers['connection'] === 'close';
    const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : untilClose ? data.length - (end + 4) : 0;
    const bodyStart = end + 4;
    if (status >= 100 && status < 200) {
      at = bodyStart;
      continue;
    }
    if (bodyStart + length > data.length) throw new Error(`response body cut short: ${length} bytes announced`);
    out.push({ status, reason: statusLine[2] ?? '', headers, body: data.subarray(bodyStart, bodyStart + length) });
    at = bodyStart + length;
  }
  return out;
}

/**
 * Opens a connection, lets `send` write to it (bytes, or a script), and collects everything until the server
 * closes the connection. Every connection ends that way: after a close the server chose, or at its idle
 * timeout. `limitMs` only keeps a broken server from hanging the test.
 */
export function converse(port: number, send: string | Buffer | Sender, limitMs = 45_000): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let sent = 0;
    let sentBeforeResponse = -1;
    let closed = false;
    let done = false;
    const finish = (endedBy: 'server' | 'limit'): void => {
      if (done) return;
      done = true;
      clearTimeout(limit);
      socket.destroy();
      const received = Buffer.concat(chunks);
      try {
        resolve({
          responses: parseResponses(received),
          received,
          endedBy,
          sentBeforeResponse: sentBeforeResponse < 0 ? sent : sentBeforeResponse,
        });
      } catch (error) {
        reject(error instanceof Error ? new Error(`${error.message}; received ${JSON.stringify(received.toString('latin1').slice(0, 500))}`) : error);
      }
    };
    const limit = setTimeout(() => finish('limit'), limitMs);
    socket.on('data', (d: Buffer) => {
      if (sentBeforeResponse < 0) sentBeforeResponse = sent;
      chunks.push(d);
    });
    socket.on('end', () => {
      closed = true;
      finish('server');
    });
    // A reset (the server closed while we were still writing) is a close by the server too.
    socket.on('error', () => {
      closed = true;
      finish('server');
    });
    socket.on('close', () => {
      closed = true;
      finish('server');
    });
    const control: SenderControl = {
      socket,
      write: (data) =>
        new Promise<void>((res) => {
          if (closed || socket.destroyed) {
            res();
            return;
          }
          sent += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
          if (socket.write(data)) res();
          else {
            const onDrain = (): void => {
              socket.off('close', onDrain);
              res();
            };
            socket.once('drain', onDrain);
            socket.once('close', onDrain);
          }
        }),
      answered: () => chunks.length > 0 || closed,
      closed: () => closed,
    };
    socket.on('connect', () => {
      if (typeof send === 'function') {
        send(control).catch(() => finish('server'));
      } else {
        void control.write(send);
      }
    });
  });
}

/** A request's bytes: request line, headers (Host unless given), then the body with its Content-Length. */
export function request(method: string, target: string, options: { headers?: readonly string[]; body?: string | Buffer; host?: boolean } = {}): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`];
  if (options.host !== false) lines.push('Host: localhost');
  lines.push(...(options.headers ?? []));
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? Buffer.from(options.body) : options.body;
  if (body !== undefined) lines.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body ?? Buffer.alloc(0)]);
}

export function bodyJson(response: RawResponse): unknown {
  return JSON.parse(response.body.toString('utf8'));
}
