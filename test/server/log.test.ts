import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, parseLogLevel } from '../../src/log.js';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return { stream, text: () => text };
}

describe('logger', () => {
  it('writes JSON lines by default, at the chosen level', () => {
    const out = capture();
    const logger = createLogger({ format: 'json', level: 'warn', destination: out.stream });
    logger.info('hidden');
    logger.warn({ model: 'm' }, 'shown');
    const lines = out.text().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, model: 'm', msg: 'shown' });
  });

  it('writes readable lines synchronously in pretty format', () => {
    const out = capture();
    const logger = createLogger({ format: 'pretty', level: 'info', destination: out.stream });
    logger.info({ rows: 3 }, 'dataset d loaded');
    // No worker transport: the line is there as soon as the call returns.
    expect(out.text()).toMatch(/INFO.*dataset d loaded/);
    expect(out.text()).toMatch(/rows: 3/);
  });

  it('rejects unknown levels with the list of valid ones', () => {
    expect(parseLogLevel('DEBUG')).toBe('debug');
    expect(() => parseLogLevel('loud')).toThrow("unknown log level 'loud'; use one of fatal, error, warn, info, debug, trace, silent");
  });
});
