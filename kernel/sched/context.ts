/**
 * Saving a process thread's registers from a core and loading them into one (the kernel's
 * switch_to and its return-to-user path): general registers, EIP, EFLAGS, the segment
 * registers (reloaded from the core's GDT, as IRET and the segment pops on the exit path do),
 * the thread's TLS descriptors into the GDT, and CR3 when the address space changes.
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../hw/cpu/insn.ts';
import { writeCr3 } from '../../hw/cpu/isa/system.ts';
import { chargeMem } from '../costs.ts';
import { type Gdt, USER_CS, USER_DS } from '../gdt.ts';
import { UserContext } from './thread.ts';

const USER_EFLAGS_MASK = 0x00240fd5; // CF PF AF ZF SF TF IF DF OF AC ID: what a process may hold (IOPL 0, no NT, VM, RF)

export function saveUserContext(cpu: Cpu, ctx: UserContext): void {
  chargeMem(cpu, 4 * 16);
  for (let k = 0; k < 8; k++) ctx.regs[k] = cpu.r[k];
  ctx.eip = cpu.eip >>> 0;
  ctx.eflags = cpu.getEflags();
  for (let s = 0; s < 6; s++) ctx.sel[s] = cpu.segSel[s];
}

/** Loads `ctx` into the core at CPL 3 with address space `cr3`. */
export function loadUserContext(cpu: Cpu, ctx: UserContext, gdt: Gdt, cr3: number): void {
  chargeMem(cpu, 4 * 16);
  gdt.loadTls(cpu, ctx.tls);
  if ((cpu.cr3 >>> 0) !== (cr3 >>> 0)) writeCr3(cpu, cr3);
  cpu.setCpl(3);
  gdt.loadSegment(cpu, CS, ctx.sel[CS]);
  gdt.loadSegment(cpu, SS, ctx.sel[SS]);
  for (const s of [DS, ES, FS, GS]) {
    if (!gdt.loadSegment(cpu, s, ctx.sel[s])) ctx.sel[s] = 0;
  }
  for (let k = 0; k < 8; k++) cpu.r[k] = ctx.regs[k];
  cpu.setEflags((ctx.eflags & USER_EFLAGS_MASK) | 0x202, -1);
  cpu.eip = ctx.eip >>> 0;
}

/** Reloads the segment registers that refer to TLS slots after the slots changed (set_thread_area). */
export function reloadTlsSegments(cpu: Cpu, gdt: Gdt, first: number, last: number): void {
  for (const s of [DS, ES, FS, GS]) {
    const idx = cpu.segSel[s] >>> 3;
    if ((cpu.segSel[s] & 4) === 0 && idx >= first && idx <= last && (cpu.segSel[s] & 0xfffc) !== 0) {
      gdt.loadSegment(cpu, s, cpu.segSel[s]);
    }
  }
}

/** A process thread's first registers: EIP = the entry, ESP = the stack, the rest 0, flat user segments. */
export function startContext(entry: number, sp: number): UserContext {
  const ctx = new UserContext();
  ctx.eip = entry;
  ctx.regs[4] = sp;
  ctx.sel[0] = USER_DS; ctx.sel[1] = USER_CS; ctx.sel[2] = USER_DS; ctx.sel[3] = USER_DS;
  return ctx;
}
