import { createHash, timingSafeEqual } from 'node:crypto';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

const BEARER = /^Bearer[ \t]+(.+)$/i;

/**
 * API-key check for `runtime.auth.api-key`. Keys are compared as SHA-256 digests with timingSafeEqual
 * against every configured key, so neither a key's length nor its first differing byte shows in timing.
 */
export class ApiKeyCheck {
  private readonly digests: readonly Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  /** `xApiKey` and `authorization` are the raw header values ('' when absent). */
  allows(xApiKey: string, authorization: string): boolean {
    let allowed = false;
    if (xApiKey !== '') allowed = this.matches(xApiKey);
    const bearer = BEARER.exec(authorization);
    if (bearer !== null && this.matches(bearer[1]!.trim())) allowed = true;
    return allowed;
  }

  private matches(candidate: string): boolean {
    const d = digest(candidate);
    let found = false;
    for (const key of this.digests) {
      if (timingSafeEqual(d, key)) found = true;
    }
    return found;
  }
}
