/** getpid, gettid, getppid and the uid/gid family: the LWK's own pids; every process runs as root (uid 0, gid 0). */
import { errno, type SysCtx, type SyscallDef } from './types.ts';

function zeros(c: SysCtx, ptrs: readonly number[]): number {
  for (const p of ptrs) {
    const r = c.proc.aspace.copyout(c.cpu, p, new Uint8Array(4));
    if (!r.ok) return errno(r.error);
  }
  return 0;
}

const zero = (): number => 0;

export const idCalls: Record<string, SyscallDef> = {
  getpid: { name: 'getpid', args: '', fn: (c) => c.proc.pid },
  gettid: { name: 'gettid', args: '', fn: (c) => c.thread.tid },
  getppid: { name: 'getppid', args: '', fn: (c) => c.proc.ppid },
  getuid: { name: 'getuid', args: '', fn: zero },
  geteuid: { name: 'geteuid', args: '', fn: zero },
  getgid: { name: 'getgid', args: '', fn: zero },
  getegid: { name: 'getegid', args: '', fn: zero },
  getuid32: { name: 'getuid32', args: '', fn: zero },
  geteuid32: { name: 'geteuid32', args: '', fn: zero },
  getgid32: { name: 'getgid32', args: '', fn: zero },
  getegid32: { name: 'getegid32', args: '', fn: zero },
  getresuid32: { name: 'getresuid32', args: 'ppp', fn: (c) => zeros(c, c.a.slice(0, 3)) },
  getresgid32: { name: 'getresgid32', args: 'ppp', fn: (c) => zeros(c, c.a.slice(0, 3)) },
};
