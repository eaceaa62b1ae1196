/**
 * set_thread_area and get_thread_area: thread-local storage through a GDT entry (Linux
 * arch/x86/kernel/tls.c). The thread's three TLS descriptors (GDT entries 6-8) live with its
 * saved state and are written into the core's GDT when it runs; a change to the running
 * thread's slot goes into the core's GDT at once, and segment registers that use the slot are
 * reloaded (the C library then loads %gs with the slot's selector).
 */
import { descriptorFromUserDesc, GDT_ENTRY_TLS_ENTRIES, GDT_ENTRY_TLS_MAX, GDT_ENTRY_TLS_MIN, parseUserDescFlags,
  userDescFlags, userDescFromDescriptor } from '../gdt.ts';
import { reloadTlsSegments } from '../sched/context.ts';
import { E } from './errno.ts';
import { errno, type SysCtx, type SyscallDef } from './types.ts';

function setThreadArea(c: SysCtx): number {
  const r = c.proc.aspace.copyin(c.cpu, c.a[0], 16);
  if (!r.ok) return errno(r.error);
  const dv = new DataView(r.value.buffer);
  const u = parseUserDescFlags(dv.getInt32(0, true), dv.getUint32(4, true), dv.getUint32(8, true), dv.getUint32(12, true));
  const tls = c.thread.user!.tls;
  let idx = u.entryNumber;
  if (idx === -1) {
    idx = -1;
    for (let k = 0; k < GDT_ENTRY_TLS_ENTRIES; k++) if (tls[k].lo === 0 && tls[k].hi === 0) { idx = GDT_ENTRY_TLS_MIN + k; break; }
    if (idx === -1) return -E.ESRCH;
    const w = c.proc.aspace.copyout(c.cpu, c.a[0], Uint8Array.of(idx & 0xff, 0, 0, 0));
    if (!w.ok) return errno(w.error);
  }
  if (idx < GDT_ENTRY_TLS_MIN || idx > GDT_ENTRY_TLS_MAX) return -E.EINVAL;
  if (u.contents === 3 && u.segNotPresent === 0) return -E.EINVAL; // a conforming code segment is refused
  const d = descriptorFromUserDesc({ ...u, entryNumber: idx });
  tls[idx - GDT_ENTRY_TLS_MIN] = d;
  const gdt = c.k.percpu[c.core].gdt;
  gdt.set(c.cpu, idx, d);
  reloadTlsSegments(c.cpu, gdt, idx, idx);
  return 0;
}

function getThreadArea(c: SysCtx): number {
  const r = c.proc.aspace.copyin(c.cpu, c.a[0], 4);
  if (!r.ok) return errno(r.error);
  const idx = new DataView(r.value.buffer).getInt32(0, true);
  if (idx < GDT_ENTRY_TLS_MIN || idx > GDT_ENTRY_TLS_MAX) return -E.EINVAL;
  const u = userDescFromDescriptor(idx, c.thread.user!.tls[idx - GDT_ENTRY_TLS_MIN]);
  const out = new DataView(new ArrayBuffer(16));
  out.setInt32(0, idx, true);
  out.setUint32(4, u.baseAddr, true);
  out.setUint32(8, u.limit, true);
  out.setUint32(12, userDescFlags(u), true);
  const w = c.proc.aspace.copyout(c.cpu, c.a[0], new Uint8Array(out.buffer));
  return w.ok ? 0 : errno(w.error);
}

export const tlsCalls: Record<string, SyscallDef> = {
  set_thread_area: { name: 'set_thread_area', args: 'p', fn: setThreadArea },
  get_thread_area: { name: 'get_thread_area', args: 'p', fn: getThreadArea },
};
