/**
 * What kernel/mm/ calls return: a value, or an error the caller sees (never a thrown JS error
 * for an ordinary failure such as running out of memory, never a partial result). Errors are
 * named after the Linux errno a system call returns for them, so syscalls map them directly.
 */

export type MmError =
  | 'ENOMEM'        // no memory (physical or virtual) for the request; nothing was changed
  | 'EINVAL'        // a bad argument (misaligned, zero length, a bad flag, freeing memory that is not allocated)
  | 'EFAULT'        // a user address that is not mapped with the access asked for (copyin/copyout, mremap)
  | 'EPERM'         // a fixed mapping below the lowest address a process may map (mmap_min_addr)
  | 'EEXIST'        // a fixed mapping that must not replace existing ones (noReplace)
  | 'ENAMETOOLONG'; // a user string without its NUL within the limit

/** Linux i386 errno values of the errors above (a system call returns their negation). */
export const ERRNO: Readonly<Record<MmError, number>> = {
  EPERM: 1, ENOMEM: 12, EFAULT: 14, EEXIST: 17, EINVAL: 22, ENAMETOOLONG: 36,
};

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: MmError };

export function ok<T>(value: T): Result<T> { return { ok: true, value }; }
export function err<T = never>(error: MmError): Result<T> { return { ok: false, error }; }
