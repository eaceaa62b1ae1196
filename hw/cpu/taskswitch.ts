/**
 * Hardware task switching as the 386 defines it (Intel SDM vol. 3, 7.3): JMP/CALL to a TSS
 * descriptor or a task gate (isa/far.ts), task gates in the IDT (exceptions.ts, with the error
 * code to push), and IRET with EFLAGS.NT = 1 (back to the task in the current TSS's back link).
 * Both TSS formats are supported: 32-bit (types 9/B) and 16-bit (types 1/3, the 286 format).
 *
 * What each kind of switch does with the busy bits, NT and the back link:
 *
 * | | JMP | CALL, interrupt, exception | IRET |
 * |---|---|---|---|
 * | new TSS busy bit | set | set | stays set (must be busy) |
 * | old TSS busy bit | cleared | stays set | cleared |
 * | NT in the new task | from its TSS | set | from its TSS |
 * | NT saved for the old task | as is | as is | cleared |
 * | back link of the new TSS | unchanged | old TR selector | unchanged |
 *
 * CR0.TS is set by every switch; DR7's local enables (L0-L3, LE) are cleared.
 *
 * Order, as on the 386: the new TSS descriptor is checked (#GP, or #TS for IRET; #NP; limit at
 * least 67h / 2Bh -> #TS), the old TSS limit (#TS), and every page the switch will touch is
 * probed; then the old task's dynamic state (EIP, EFLAGS, general registers, segment selectors;
 * not CR3 or LDTR) is written into the old TSS, the busy bits and the back link are updated,
 * and the new state is read. That is the commit point: TR, EIP, EFLAGS, the general registers,
 * the selectors, CR3 (32-bit TSS with paging on; the TLB is flushed) and LDTR are loaded, and
 * any fault after it (the segment checks: LDTR, SS, DS, ES, FS, GS, CS, each -> #TS(selector),
 * #NP, #SS; EIP beyond CS's limit -> #GP) is raised in the new task's context (the faulting
 * EIP is the new task's). As in Bochs, CPL reads as 3 while LDTR and SS are checked, so that an
 * exception there switches to a known-good ring-0 stack from the new TSS.
 *
 * Finally an exception that has an error code pushes it on the new task's stack (32-bit TSS:
 * a dword, 16-bit: a word).
 *
 * A 16-bit TSS leaves the upper halves of the general registers at FFFFh, EFLAGS's upper half
 * at 0 and FS/GS null, and does not change CR3 (Bochs' measured behaviour of the 386).
 *
 * SVM (svm.ts): in a guest, the task-switch intercept (exit 0x7d) is checked once the new TSS
 * descriptor has passed its checks (type, present, limit: as Bochs orders it) and before the old
 * TSS is checked or anything changes. RIP is the instruction (or, for an event, the instruction
 * it interrupted) and the event being delivered is in EXITINTINFO.
 *
 * Not modelled: the TSS's T bit (debug trap on task switch) is ignored; a VM flag in the new
 * EFLAGS is dropped (virtual-8086 tasks are not supported).
 */
import { insnCosts } from '../costs.ts';
import type { Cpu } from './cpu.ts';
import { IF, NT } from './flags.ts';
import { CS, DS, ES, FS, GS, SS } from './insn.ts';
import { loadPdptes } from './paging.ts';
import { taskSwitchIntercept } from './svm.ts';
import {
  type Desc, descAr, descBase, descDpl, descIsCode, descIsSeg, descLimit, descPresent, GP, loadCs, loadFromDesc, NP,
  readDesc, setAccessed, SSF, TS,
} from './segmentation.ts';

export const TS_JMP = 0;
export const TS_CALL = 1;
export const TS_IRET = 2;
export const TS_INT = 3;

const nd: Desc = { lo: 0, hi: 0, addr: 0 };
const sd: Desc = { lo: 0, hi: 0, addr: 0 };

/** The incoming task's state, read before the commit point. */
const st = {
  cr3: 0, eip: 0, flags: 0, ldt: 0,
  regs: new Int32Array(8),
  sels: new Int32Array(6), // ES CS SS DS FS GS
};

/** Sets or clears the busy bit (type bit 1) of the TSS descriptor `sel` in the GDT. */
function setBusy(cpu: Cpu, sel: number, busy: boolean): void {
  const addr = (cpu.gdtBase + (sel & 0xfff8) + 5) >>> 0;
  const b = cpu.srd8(addr);
  cpu.swr8(addr, busy ? b | 2 : b & ~2);
}

/** Touches [lin, lin+len) for writing without changing it (so a #PF comes before any change). */
function probeWrite(cpu: Cpu, lin: number, len: number): void {
  cpu.swr8(lin, cpu.srd8(lin));
  cpu.swr8(lin + len - 1, cpu.srd8(lin + len - 1));
}

/**
 * Switches to the task whose TSS selector is `sel` (the caller resolved a task gate and made the
 * privilege checks of JMP/CALL/INT n). `err` is the error code to push (-1: none); `ext` is the
 * EXT bit for the error codes of the checks.
 */
export function taskSwitch(cpu: Cpu, sel: number, reason: number, err: number, ext: number): void {
  sel &= 0xffff;
  const iret = reason === TS_IRET;
  const nested = reason === TS_CALL || reason === TS_INT;
  const bad = (sel & 0xfffc) | ext;
  const vec = iret ? TS : GP;
  // ---- the new TSS descriptor: in the GDT, a TSS of the right busy state, present, big enough
  if ((sel & 4) !== 0 || !readDesc(cpu, sel, nd)) cpu.raise(vec, bad);
  const type = (nd.hi >>> 8) & 0x1f; // with S
  if (iret ? type !== 0x03 && type !== 0x0b : type !== 0x01 && type !== 0x09) cpu.raise(vec, bad);
  if (!descPresent(nd)) cpu.raise(NP, bad);
  const new32 = (type & 8) !== 0;
  const nbase = descBase(nd), nlimit = descLimit(nd);
  const newMax = new32 ? 0x67 : 0x2b;
  if (nlimit < newMax) cpu.raise(TS, bad);
  if (cpu.guest) taskSwitchIntercept(cpu, sel, iret, reason === TS_JMP, err);
  const old32 = (cpu.trAr & 8) !== 0;
  const obase = cpu.trBase;
  if (cpu.trLimit < (old32 ? 0x5f : 0x29)) cpu.raise(TS, (cpu.trSel & 0xfffc) | ext);

  // ---- probe every page the switch touches, so that a #PF comes before any change
  cpu.srd8(nbase); cpu.srd8(nbase + newMax);
  if (nested) probeWrite(cpu, nbase, 2);
  if (old32) probeWrite(cpu, obase + 0x20, 0x3e); else probeWrite(cpu, obase + 0x0e, 0x1c);
  if (!iret) probeWrite(cpu, cpu.gdtBase + (sel & 0xfff8) + 5, 1);
  const oldInGdt = (cpu.trSel & 0xfffc) !== 0;
  if (!nested && oldInGdt) probeWrite(cpu, cpu.gdtBase + (cpu.trSel & 0xfff8) + 5, 1);

  // ---- save the outgoing task's state in its TSS
  let oflags = cpu.getEflags();
  if (iret) oflags &= ~NT;
  const r = cpu.r;
  if (old32) {
    cpu.swr32(obase + 0x20, cpu.eip);
    cpu.swr32(obase + 0x24, oflags);
    for (let k = 0; k < 8; k++) cpu.swr32(obase + 0x28 + 4 * k, r[k]);
    for (let s = 0; s < 6; s++) cpu.swr16(obase + 0x48 + 4 * s, cpu.segSel[s]);
  } else {
    cpu.swr16(obase + 0x0e, cpu.eip);
    cpu.swr16(obase + 0x10, oflags);
    for (let k = 0; k < 8; k++) cpu.swr16(obase + 0x12 + 2 * k, r[k]);
    for (let s = 0; s < 4; s++) cpu.swr16(obase + 0x22 + 2 * s, cpu.segSel[s]);
  }
  // ---- busy bits and the back link
  if (!nested && oldInGdt) setBusy(cpu, cpu.trSel, false);
  if (nested) cpu.swr16(nbase, cpu.trSel);
  if (!iret) setBusy(cpu, sel, true);

  // ---- read the incoming task's state
  if (new32) {
    st.cr3 = cpu.srd32(nbase + 0x1c);
    st.eip = cpu.srd32(nbase + 0x20) >>> 0;
    st.flags = cpu.srd32(nbase + 0x24);
    for (let k = 0; k < 8; k++) st.regs[k] = cpu.srd32(nbase + 0x28 + 4 * k);
    for (let s = 0; s < 6; s++) st.sels[s] = cpu.srd16(nbase + 0x48 + 4 * s);
    st.ldt = cpu.srd16(nbase + 0x60);
  } else {
    st.eip = cpu.srd16(nbase + 0x0e);
    st.flags = cpu.srd16(nbase + 0x10);
    for (let k = 0; k < 8; k++) st.regs[k] = 0xffff0000 | cpu.srd16(nbase + 0x12 + 2 * k);
    for (let s = 0; s < 4; s++) st.sels[s] = cpu.srd16(nbase + 0x22 + 2 * s);
    st.sels[FS] = 0; st.sels[GS] = 0;
    st.ldt = cpu.srd16(nbase + 0x2a);
  }

  // ================= commit point: from here on, faults belong to the new task
  cpu.trSel = sel;
  cpu.trBase = nbase;
  cpu.trLimit = nlimit;
  cpu.trAr = descAr(nd) | 0x2;
  cpu.cr0 |= 0x8;            // CR0.TS
  cpu.dr[7] &= ~0x155;       // L0-L3, LE
  cpu.cycles += insnCosts.taskSwitch.cycles;
  cpu.eip = st.eip;
  cpu.insnEip = st.eip;
  for (let k = 0; k < 8; k++) r[k] = st.regs[k];
  cpu.setEflags(nested ? st.flags | NT : st.flags, -1);
  // the selectors first, with empty caches: validated one by one below
  const csSel = st.sels[CS], csRpl = csSel & 3;
  cpu.setCpl(3);
  for (let s = 0; s < 6; s++) cpu.loadSegCache(s, st.sels[s], 0, 0, 0);
  cpu.ldtSel = st.ldt; cpu.ldtBase = 0; cpu.ldtLimit = 0; cpu.ldtAr = 0;
  if (new32 && cpu.pg && st.cr3 !== cpu.cr3) {
    cpu.cr3 = st.cr3;
    if (cpu.pae && !loadPdptes(cpu)) cpu.raise(GP, ext);
    cpu.flushTlb(true);
  }
  loadLdt(cpu, st.ldt, ext);
  loadSs(cpu, st.sels[SS], csRpl, ext);
  cpu.setCpl(csRpl);
  loadData(cpu, DS, st.sels[DS], ext);
  loadData(cpu, ES, st.sels[ES], ext);
  loadData(cpu, FS, st.sels[FS], ext);
  loadData(cpu, GS, st.sels[GS], ext);
  loadCode(cpu, csSel, ext);
  if (err >= 0) { if (new32) cpu.push32(err); else cpu.push16(err); }
  if (cpu.eip > cpu.segLimit[CS]) cpu.raise(GP, ext);
  if ((cpu.flags & IF) !== 0) cpu.recheckEvents();
}

function loadLdt(cpu: Cpu, sel: number, ext: number): void {
  const bad = (sel & 0xfffc) | ext;
  if ((sel & 4) !== 0) cpu.raise(TS, bad);
  if ((sel & 0xfffc) === 0) return; // a null LDT is allowed (the LDT stays unusable)
  if (!readDesc(cpu, sel, sd) || descIsSeg(sd) || (sd.hi & 0xf00) !== 0x200 || !descPresent(sd)) cpu.raise(TS, bad);
  cpu.ldtBase = descBase(sd); cpu.ldtLimit = descLimit(sd); cpu.ldtAr = descAr(sd);
}

function loadSs(cpu: Cpu, sel: number, cpl: number, ext: number): void {
  const bad = (sel & 0xfffc) | ext;
  if ((sel & 0xfffc) === 0 || !readDesc(cpu, sel, sd)) cpu.raise(TS, bad);
  if (!descIsSeg(sd) || descIsCode(sd) || (sd.hi & 0x200) === 0) cpu.raise(TS, bad);
  if (!descPresent(sd)) cpu.raise(SSF, bad);
  if (descDpl(sd) !== cpl || (sel & 3) !== cpl) cpu.raise(TS, bad);
  setAccessed(cpu, sd);
  loadFromDesc(cpu, SS, sel, sd);
}

function loadData(cpu: Cpu, s: number, sel: number, ext: number): void {
  if ((sel & 0xfffc) === 0) return; // null: stays loaded with an unusable cache
  const bad = (sel & 0xfffc) | ext;
  if (!readDesc(cpu, sel, sd) || !descIsSeg(sd)) cpu.raise(TS, bad);
  const isCode = descIsCode(sd);
  if (isCode && (sd.hi & 0x200) === 0) cpu.raise(TS, bad);
  if (!isCode || (sd.hi & 0x400) === 0) {
    const dpl = descDpl(sd);
    if ((sel & 3) > dpl || cpu.cpl > dpl) cpu.raise(TS, bad);
  }
  if (!descPresent(sd)) cpu.raise(NP, bad);
  setAccessed(cpu, sd);
  loadFromDesc(cpu, s, sel, sd);
}

function loadCode(cpu: Cpu, sel: number, ext: number): void {
  const bad = (sel & 0xfffc) | ext;
  if ((sel & 0xfffc) === 0 || !readDesc(cpu, sel, sd) || !descIsCode(sd)) cpu.raise(TS, bad);
  const dpl = descDpl(sd), rpl = sel & 3;
  if ((sd.hi & 0x400) !== 0 ? dpl > rpl : dpl !== rpl) cpu.raise(TS, bad);
  if (!descPresent(sd)) cpu.raise(NP, bad);
  loadCs(cpu, sel, sd, rpl);
}
