/**
 * Event delivery: exceptions, external interrupts, NMI and software interrupts, through the IVT
 * in real mode and through IDT gates in protected mode (interrupt, trap and task gates, with the
 * stack switch through the TSS for an inner ring), with the 386's error codes.
 *
 * The double-fault/triple-fault rules live in Cpu.deliverWithDoubleFault, which calls this.
 */
import type { Cpu } from './cpu.ts';
import { IF, NT, RF, TF, VM, AC } from './flags.ts';
import { CS, SS } from './insn.ts';
import {
  checkStackSeg, type Desc, descBase, descDpl, descIsCode, descIsSeg, descLimit, descPresent, GP, loadCs, NP,
  readDesc, setAccessed, SSF, tssStack,
} from './segmentation.ts';
import { TS_INT, taskSwitch } from './taskswitch.ts';

/** Event types. */
export const EV_EXCEPTION = 0; // raised by the CPU (EXT = 1 in nested error codes)
export const EV_EXTERNAL = 1;  // INTR
export const EV_NMI = 2;
export const EV_SOFT = 3;      // INT n: gate DPL checked against CPL
export const EV_SOFT_EXC = 4;  // INT3, INTO: gate DPL checked; pushes the next EIP
export const EV_ICEBP = 5;     // INT1 (F1): no DPL check

/** Contributory exceptions (#DE, #TS, #NP, #SS, #GP). */
function contributory(v: number): boolean { return v === 0 || (v >= 10 && v <= 13); }

/** The 386 rule: which pairs of exceptions (first being delivered, second raised) make a double fault. */
export function isDoubleFault(first: number, second: number): boolean {
  return (contributory(first) && contributory(second)) || (first === 14 && (contributory(second) || second === 14));
}

/** Exceptions that push an error code. */
export function hasErrorCode(vec: number): boolean {
  return vec === 8 || (vec >= 10 && vec <= 14) || vec === 17;
}

const gate: Desc = { lo: 0, hi: 0, addr: 0 };
const cdesc: Desc = { lo: 0, hi: 0, addr: 0 };
const sdesc: Desc = { lo: 0, hi: 0, addr: 0 };
const stk = [0, 0];

export function deliverEvent(cpu: Cpu, vec: number, type: number, err: number): void {
  // A fault while pushing the frame leaves ESP as it was before the event (the next event, or
  // the double fault, is delivered on the same stack). A fault after a task gate's switch has
  // committed (TR changed) belongs to the new task, whose ESP stays.
  const esp = cpu.r[4], tr = cpu.trSel;
  try {
    if (!cpu.pe) { deliverReal(cpu, vec); return; }
    deliverProtected(cpu, vec, type, type === EV_EXCEPTION && hasErrorCode(vec) ? err : -1);
  } catch (e) {
    if (cpu.trSel === tr) cpu.r[4] = esp;
    throw e;
  }
}

function deliverReal(cpu: Cpu, vec: number): void {
  const off = vec * 4;
  if (off + 3 > cpu.idtLimit) cpu.raise(GP, 0);
  const ip = cpu.srd16(cpu.idtBase + off);
  const cs = cpu.srd16(cpu.idtBase + off + 2);
  cpu.push16(cpu.getEflags());
  cpu.push16(cpu.segSel[CS]);
  cpu.push16(cpu.eip);
  cpu.setEflags(0, IF | TF | AC | RF);
  cpu.loadSegCache(CS, cs, cs << 4, cpu.segLimit[CS], cpu.segAr[CS]);
  cpu.eip = ip;
}

function deliverProtected(cpu: Cpu, vec: number, type: number, err: number): void {
  const ext = type === EV_EXCEPTION || type === EV_EXTERNAL || type === EV_NMI ? 1 : 0;
  const idtErr = vec * 8 + 2 + ext;
  if (vec * 8 + 7 > cpu.idtLimit) cpu.raise(GP, idtErr);
  gate.addr = (cpu.idtBase + vec * 8) >>> 0;
  gate.lo = cpu.srd32(gate.addr);
  gate.hi = cpu.srd32(gate.addr + 4);
  const gtype = (gate.hi >>> 8) & 0x1f; // S bit included: must be 0
  if (gtype !== 0x05 && gtype !== 0x06 && gtype !== 0x07 && gtype !== 0x0e && gtype !== 0x0f) cpu.raise(GP, idtErr);
  if ((type === EV_SOFT || type === EV_SOFT_EXC) && descDpl(gate) < cpu.cpl) cpu.raise(GP, vec * 8 + 2);
  if (!descPresent(gate)) cpu.raise(NP, idtErr);

  if (gtype === 0x05) {
    taskSwitch(cpu, gate.lo >>> 16, TS_INT, err, ext);
    return;
  }
  const is32 = (gtype & 0x8) !== 0;
  const isInt = (gtype & 1) === 0;
  const sel = gate.lo >>> 16;
  const offset = is32 ? ((gate.hi & 0xffff0000) | (gate.lo & 0xffff)) >>> 0 : gate.lo & 0xffff;
  if ((sel & 0xfffc) === 0) cpu.raise(GP, ext);
  if (!readDesc(cpu, sel, cdesc)) cpu.raise(GP, (sel & 0xfffc) | ext);
  const dpl = descDpl(cdesc);
  if (!descIsSeg(cdesc) || !descIsCode(cdesc) || dpl > cpu.cpl) cpu.raise(GP, (sel & 0xfffc) | ext);
  if (!descPresent(cdesc)) cpu.raise(NP, (sel & 0xfffc) | ext);
  const conforming = (cdesc.hi & 0x400) !== 0;
  const flags = cpu.getEflags();
  const oldCs = cpu.segSel[CS], oldEip = cpu.eip;
  const size = is32 ? 4 : 2;

  if (!conforming && dpl < cpu.cpl) {
    // inner privilege: switch to the ring-dpl stack from the TSS
    tssStack(cpu, dpl, ext, stk);
    const nss = stk[0], nesp = stk[1];
    checkStackSeg(cpu, nss, dpl, ext, sdesc);
    const base = descBase(sdesc), limit = descLimit(sdesc);
    const big = (sdesc.hi & 0x00400000) !== 0;
    const mask = big ? 0xffffffff : 0xffff;
    const expandDown = (sdesc.hi & 0x400) !== 0;
    if (offset > descLimit(cdesc)) cpu.raise(GP, 0);
    let sp = nesp & mask;
    const push = (v: number) => {
      sp = ((sp - size) & mask) >>> 0;
      const ok = expandDown ? sp > limit && sp + size - 1 <= mask : sp + size - 1 <= limit;
      if (!ok) cpu.raise(SSF, (nss & 0xfffc) | ext);
      const lin = (base + sp) >>> 0;
      if (size === 4) cpu.swr32(lin, v); else cpu.swr16(lin, v);
    };
    push(cpu.segSel[SS]);
    push(cpu.r[4]);
    push(flags);
    push(oldCs);
    push(oldEip);
    if (err >= 0) push(err);
    setAccessed(cpu, sdesc);
    loadCs(cpu, sel, cdesc, dpl);
    cpu.loadSegCache(SS, (nss & 0xfffc) | dpl, base, limit, (sdesc.hi >>> 8) & 0xf0ff);
    if (big) cpu.r[4] = sp; else cpu.r[4] = (cpu.r[4] & ~0xffff) | sp;
    // segment registers that the new ring may not use stay loaded; VM86 is not modelled
  } else if (conforming || dpl === cpu.cpl) {
    const cpl = cpu.cpl;
    if (offset > descLimit(cdesc)) cpu.raise(GP, 0);
    if (size === 4) { cpu.push32(flags); cpu.push32(oldCs); cpu.push32(oldEip); if (err >= 0) cpu.push32(err); }
    else { cpu.push16(flags); cpu.push16(oldCs); cpu.push16(oldEip); if (err >= 0) cpu.push16(err); }
    loadCs(cpu, sel, cdesc, cpl);
  } else {
    cpu.raise(GP, (sel & 0xfffc) | ext);
  }
  cpu.eip = offset;
  cpu.setEflags(0, TF | NT | RF | VM | (isInt ? IF : 0));
}
