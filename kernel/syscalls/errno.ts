/** Linux errno values (asm-generic/errno-base.h, errno.h) the LWK returns, negated, from system calls. */
export const E = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, EMFILE: 24, ENOTTY: 25, ESPIPE: 29, EROFS: 30, EPIPE: 32, ERANGE: 34, ENAMETOOLONG: 36, ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40,
  EOPNOTSUPP: 95,
} as const;

export type ErrnoName = keyof typeof E;

const NAMES = new Map<number, ErrnoName>(Object.entries(E).map(([k, v]) => [v, k as ErrnoName]));

const MESSAGES: Partial<Record<ErrnoName, string>> = {
  EPERM: 'Operation not permitted', ENOENT: 'No such file or directory', ESRCH: 'No such process',
  EINTR: 'Interrupted system call', EBADF: 'Bad file descriptor', EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory', EACCES: 'Permission denied', EFAULT: 'Bad address', EEXIST: 'File exists',
  EINVAL: 'Invalid argument', ENOTTY: 'Inappropriate ioctl for device', ESPIPE: 'Illegal seek',
  ENOSYS: 'Function not implemented', EPIPE: 'Broken pipe', ERANGE: 'Numerical result out of range',
  ENAMETOOLONG: 'File name too long', EOPNOTSUPP: 'Operation not supported', ECHILD: 'No child processes',
  EISDIR: 'Is a directory', ELOOP: 'Too many levels of symbolic links', ENOTEMPTY: 'Directory not empty', ENOTDIR: 'Not a directory', EROFS: 'Read-only file system', ENOEXEC: 'Exec format error',
};

/** "ENOSYS (Function not implemented)" for strace, from a positive errno. */
export function errnoText(errno: number): string {
  const n = NAMES.get(errno);
  if (n === undefined) return `E${errno}`;
  const m = MESSAGES[n];
  return m !== undefined ? `${n} (${m})` : n;
}
