import { existsSync } from 'node:fs';

/**
 * strace, for the tests that watch what the server does at the system-call level; undefined where it is not
 * installed. Under CI=true a missing strace fails the run; elsewhere those tests are skipped with a banner.
 */
export const STRACE = ['/usr/bin/strace', '/bin/strace'].find((p) => existsSync(p));

const STRACE_MISSING = 'strace is needed for this test (Debian: apt-get install strace; .ci/run installs it)';
if (STRACE === undefined) {
  if (process.env['CI'] === 'true') throw new Error(STRACE_MISSING);
  console.warn(`\n*** SKIPPED: ${STRACE_MISSING} ***\n`);
}
