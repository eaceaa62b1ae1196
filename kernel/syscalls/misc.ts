/**
 * Small calls a static C library makes at start-up and now and then: uname, set_tid_address,
 * set_robust_list, rseq (-ENOSYS: the C library then does without), prlimit64 / ugetrlimit /
 * getrlimit, getrandom (deterministic, from the boot seed), sched_getaffinity, prctl
 * (PR_SET_NAME / PR_GET_NAME), sigaltstack (readlink and getcwd: fs.ts).
 * What identifies the system is the LWK's own: uname says Linux and i686, the node name is the
 * LWK's.
 */
import { E } from './errno.ts';
import { errno, s32, type SysCtx, type SyscallDef } from './types.ts';

export const UTS = {
  sysname: 'Linux',
  nodename: 'v3vee',
  release: '6.1.0-v3vee-lwk',
  version: '#1 SMP v3vee LWK',
  machine: 'i686',
  domainname: '(none)',
} as const;

const enc = new TextEncoder();

function put(c: SysCtx, addr: number, bytes: Uint8Array): number {
  const w = c.proc.aspace.copyout(c.cpu, addr, bytes);
  return w.ok ? 0 : errno(w.error);
}

function uname(c: SysCtx): number {
  const out = new Uint8Array(6 * 65);
  [UTS.sysname, UTS.nodename, UTS.release, UTS.version, UTS.machine, UTS.domainname]
    .forEach((s, k) => out.set(enc.encode(s).subarray(0, 64), k * 65));
  return put(c, c.a[0], out);
}

const RLIM_INFINITY = 0xffffffffffffffffn;
const RLIMIT_STACK = 3, RLIMIT_NOFILE = 7, RLIM_NLIMITS = 16;

/** [soft, hard] of a resource limit. */
function limit(c: SysCtx, res: number): [bigint, bigint] {
  if (res === RLIMIT_STACK) return [BigInt(c.k.stackSize), RLIM_INFINITY];
  if (res === RLIMIT_NOFILE) return [1024n, 1024n];
  return [RLIM_INFINITY, RLIM_INFINITY];
}

function prlimit64(c: SysCtx): number {
  const [pid, res, , old] = c.a;
  if (pid !== 0 && pid !== c.proc.pid) return -E.ESRCH;
  if (res >= RLIM_NLIMITS) return -E.EINVAL;
  if (old !== 0) {
    const [cur, max] = limit(c, res);
    const dv = new DataView(new ArrayBuffer(16));
    dv.setBigUint64(0, cur, true);
    dv.setBigUint64(8, max, true);
    const r = put(c, old, new Uint8Array(dv.buffer));
    if (r !== 0) return r;
  }
  return 0; // new limits are accepted and not enforced
}

/** ugetrlimit / getrlimit: 32-bit values, RLIM_INFINITY as 0xFFFFFFFF. */
function getrlimit32(c: SysCtx): number {
  const res = c.a[0];
  if (res >= RLIM_NLIMITS) return -E.EINVAL;
  const [cur, max] = limit(c, res);
  const clip = (v: bigint): number => (v >= 0xffffffffn ? 0xffffffff : Number(v));
  const dv = new DataView(new ArrayBuffer(8));
  dv.setUint32(0, clip(cur), true);
  dv.setUint32(4, clip(max), true);
  return put(c, c.a[1], new Uint8Array(dv.buffer));
}

function getrandom(c: SysCtx): number {
  const len = Math.min(c.a[1], 33554431);
  if ((c.a[2] & ~0x7) !== 0) return -E.EINVAL;
  const r = put(c, c.a[0], c.k.random.bytes(len));
  return r !== 0 ? r : len;
}

function schedGetaffinity(c: SysCtx): number {
  const [pid, len, mask] = c.a;
  if (pid !== 0 && pid !== c.proc.pid && pid !== c.thread.tid) return -E.ESRCH;
  const n = c.k.percpu.length;
  const bytes = Math.ceil(n / 32) * 4;
  if (len < bytes || (len & 3) !== 0) return -E.EINVAL;
  const out = new Uint8Array(bytes);
  out[c.thread.core >> 3] |= 1 << (c.thread.core & 7); // the thread is pinned to its core
  const r = put(c, mask, out);
  return r !== 0 ? r : bytes;
}

const PR_SET_NAME = 15, PR_GET_NAME = 16;

function prctl(c: SysCtx): number {
  switch (c.a[0]) {
    case PR_SET_NAME: {
      const r = c.proc.aspace.copyinString(c.cpu, c.a[1], 4096);
      if (!r.ok && r.error !== 'ENAMETOOLONG') return errno(r.error);
      const s = r.ok ? new TextDecoder('latin1').decode(r.value) : '';
      c.proc.comm = s.slice(0, 15);
      return 0;
    }
    case PR_GET_NAME: {
      const out = new Uint8Array(16);
      out.set(enc.encode(c.proc.comm).subarray(0, 15));
      return put(c, c.a[1], out);
    }
    default:
      return -E.EINVAL;
  }
}

function sigaltstack(c: SysCtx): number {
  if (c.a[1] !== 0) {
    const dv = new DataView(new ArrayBuffer(12));
    dv.setUint32(4, 2, true); // SS_DISABLE
    const r = put(c, c.a[1], new Uint8Array(dv.buffer));
    if (r !== 0) return r;
  }
  return 0;
}

export const miscCalls: Record<string, SyscallDef> = {
  uname: { name: 'uname', args: 'p', fn: uname },
  set_tid_address: { name: 'set_tid_address', args: 'p', fn: (c) => { c.thread.clearChildTid = c.a[0]; return c.thread.tid; } },
  set_robust_list: {
    name: 'set_robust_list', args: 'pu',
    fn: (c) => { if (c.a[1] !== 12) return -E.EINVAL; c.proc.robustList = c.a[0]; c.proc.robustListLen = c.a[1]; return 0; },
  },
  rseq: { name: 'rseq', args: 'pxxx', fn: () => -E.ENOSYS },
  prlimit64: { name: 'prlimit64', args: 'ddpp', fn: prlimit64 },
  ugetrlimit: { name: 'ugetrlimit', args: 'dp', fn: getrlimit32 },
  getrlimit: { name: 'getrlimit', args: 'dp', fn: getrlimit32 },
  getrandom: { name: 'getrandom', args: 'pux', fn: getrandom },
  sched_getaffinity: { name: 'sched_getaffinity', args: 'dup', fn: schedGetaffinity },
  prctl: { name: 'prctl', args: 'dpxxx', fn: prctl },
  sigaltstack: { name: 'sigaltstack', args: 'pp', fn: sigaltstack },
};
