import { stat } from 'node:fs/promises';

/**
 * What a file looks like on disk, cheaply: device, inode, size and change times in nanoseconds. Two equal
 * signatures mean the file was not rewritten in between: an editor that replaces the file by rename changes
 * the inode, a write in place changes mtime (to the nanosecond, so same-size rewrites are seen too).
 * A file that cannot be stat'ed gets a signature naming why, so its coming back is a change as well.
 */
export async function fileSignature(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return `unreadable:${code ?? 'unknown'}`;
  }
}
