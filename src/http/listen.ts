import net from 'node:net';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { ForecastdError } from '../errors.js';

/** uWebSockets.js's LIBUS_LISTEN_EXCLUSIVE_PORT (its ListenOptions enum exists only in the type declarations). */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;

/** The native listen also takes options after host and port; the type declarations list them only without a host. */
type ListenWithOptions = (
  host: string,
  port: number,
  options: number,
  cb: (listenSocket: us_listen_socket | false) => void,
) => TemplatedApp;

/**
 * Listens on host:port alone. By default uWebSockets.js sets SO_REUSEPORT on a listen socket with a fixed
 * port, so a second server started on that port would not fail: the kernel would split the connections
 * between the two. Without it, the bind fails with "address in use" as with any other server.
 */
export function listenExclusive(
  app: TemplatedApp,
  host: string,
  port: number,
  cb: (listenSocket: us_listen_socket | false) => void,
): void {
  (app.listen as unknown as ListenWithOptions).call(app, host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, cb);
}

/** "HOST:PORT", an IPv6 host in brackets. */
export function formatAddress(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Why listening on host:port failed. uWebSockets.js only reports that it failed, so the same address is tried
 * once with Node's own listen, which reports the system's error code.
 */
export async function listenFailure(host: string, port: number): Promise<ForecastdError> {
  const address = formatAddress(host, port);
  const code = await new Promise<string | null>((resolve) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(null)));
  });
  switch (code) {
    case 'EADDRINUSE':
      return new ForecastdError('ERR_ADDRESS_IN_USE', `${address} is already in use (another process listens there)`);
    case 'EADDRNOTAVAIL':
      return new ForecastdError('ERR_LISTEN', `cannot listen on ${address}: ${host} is not an address of this machine`);
    case 'EACCES':
      return new ForecastdError(
        'ERR_LISTEN',
        `cannot listen on ${address}: permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new ForecastdError('ERR_LISTEN', `cannot listen on ${address}: the host name ${host} does not resolve`);
    case null:
      // Free when tried again: whatever held it has just let go.
      return new ForecastdError('ERR_LISTEN', `cannot listen on ${address}; it was free when tried again, so try starting again`);
    default:
      return new ForecastdError('ERR_LISTEN', `cannot listen on ${address}: ${code}`);
  }
}
