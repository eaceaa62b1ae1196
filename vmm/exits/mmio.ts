/**
 * Emulating one guest access to guest-physical memory that is not RAM (an NPF under nested
 * paging, a #PF the shadow mode hands back): the instruction at CS:RIP is fetched through the
 * guest's page tables and decoded (the MOV forms compilers emit for MMIO: 88/89/8A/8B, A0-A3,
 * C6/C7, MOVZX/MOVSX 0F B6/B7/BE/BF, with operand-size and segment prefixes, 32-bit addressing),
 * the access goes to the device whose range holds the address, and RIP moves past the
 * instruction. Memory no device backs reads all ones and drops writes, counted as `unbacked`
 * (DESIGN.md, "The outside world"). An instruction outside that set stops the VM in error with
 * its bytes.
 */
import { VMCB_CS, VMCB_RAX, VMCB_RIP } from '../../hw/cpu/vmcb.ts';
import { vmmCosts } from '../costs.ts';
import type { MmioDevice } from '../devices/registry.ts';
import { ACT_CONTINUE, ACT_STOP } from './actions.ts';
import type { VCore } from '../vcore.ts';

export interface MmioRegion { name: string; base: number; size: number; dev: MmioDevice }

/** A decoded MMIO instruction. */
export interface MmioInsn {
  len: number;
  write: boolean;
  /** Bytes accessed in memory. */
  size: 1 | 2 | 4;
  /** Register operand (index as Cpu.r; for size 1, 0-3 = AL..BL, 4-7 = AH..BH), or -1 for an immediate. */
  reg: number;
  imm: number;
  /** Register width for MOVZX/MOVSX destinations (2 or 4), else = size. */
  dstSize: 1 | 2 | 4;
  signExtend: boolean;
}

/** Length of ModRM + SIB + displacement (32-bit addressing) starting at b[i]; -1 for a register operand. */
function modrmLen(b: Uint8Array, i: number): number {
  const m = b[i], mod = m >>> 6, rm = m & 7;
  if (mod === 3) return -1;
  let n = 1;
  if (rm === 4) { n++; if (mod === 0 && (b[i + 1] & 7) === 5) n += 4; }
  if (mod === 0 && rm === 5) n += 4;
  else if (mod === 1) n += 1;
  else if (mod === 2) n += 4;
  return n;
}

/** Decodes the MMIO instruction in `b` (up to 15 bytes); null when it is not one we emulate. */
export function decodeMmio(b: Uint8Array): MmioInsn | null {
  let i = 0, op16 = false;
  for (; i < 15; i++) {
    const p = b[i];
    if (p === 0x66) op16 = true;
    else if (p === 0x2e || p === 0x36 || p === 0x3e || p === 0x26 || p === 0x64 || p === 0x65 || p === 0xf0) continue;
    else break;
  }
  const osz: 2 | 4 = op16 ? 2 : 4;
  const op = b[i++];
  const withModrm = (write: boolean, size: 1 | 2 | 4, immBytes: number, dstSize: 1 | 2 | 4 = size, signExtend = false): MmioInsn | null => {
    const n = modrmLen(b, i);
    if (n < 0) return null;
    const reg = (b[i] >>> 3) & 7;
    const at = i + n;
    let imm = 0;
    for (let k = 0; k < immBytes; k++) imm |= b[at + k] << (8 * k);
    return { len: at + immBytes, write, size, reg: immBytes > 0 ? -1 : reg, imm: imm >>> 0, dstSize, signExtend };
  };
  switch (op) {
    case 0x88: return withModrm(true, 1, 0);
    case 0x89: return withModrm(true, osz, 0);
    case 0x8a: return withModrm(false, 1, 0);
    case 0x8b: return withModrm(false, osz, 0);
    case 0xc6: return ((b[i] >>> 3) & 7) === 0 ? withModrm(true, 1, 1) : null;
    case 0xc7: return ((b[i] >>> 3) & 7) === 0 ? withModrm(true, osz, osz) : null;
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: {
      const size = (op & 1) === 0 ? 1 : osz;
      return { len: i + 4, write: op >= 0xa2, size, reg: 0, imm: 0, dstSize: size, signExtend: false };
    }
    case 0x0f: {
      const op2 = b[i++];
      if (op2 === 0xb6 || op2 === 0xbe) return withModrm(false, 1, 0, osz, op2 === 0xbe);
      if (op2 === 0xb7 || op2 === 0xbf) return withModrm(false, 2, 0, 4, op2 === 0xbf);
      return null;
    }
    default: return null;
  }
}

function findRegion(regions: readonly MmioRegion[], gpa: number): MmioRegion | null {
  for (const r of regions) if (gpa >= r.base && gpa < r.base + r.size) return r;
  return null;
}

function readReg(vc: VCore, reg: number, size: 1 | 2 | 4): number {
  if (size === 1) return reg < 4 ? vc.reg(reg) & 0xff : (vc.reg(reg - 4) >>> 8) & 0xff;
  const v = vc.reg(reg);
  return size === 2 ? v & 0xffff : v >>> 0;
}

function writeReg(vc: VCore, reg: number, size: 1 | 2 | 4, v: number): void {
  if (size === 4) { vc.setReg(reg, v); return; }
  if (size === 2) { vc.setReg(reg, (vc.reg(reg) & ~0xffff) | (v & 0xffff)); return; }
  if (reg < 4) vc.setReg(reg, (vc.reg(reg) & ~0xff) | (v & 0xff));
  else vc.setReg(reg - 4, (vc.reg(reg - 4) & ~0xff00) | ((v & 0xff) << 8));
}

/** Fetches up to 15 instruction bytes at CS:RIP through the guest's page tables. */
function fetch(vc: VCore): Uint8Array | null {
  const lin = (vc.mem.read(vc.vmcb + VMCB_CS + 8, 4) + vc.mem.read(vc.vmcb + VMCB_RIP, 4)) >>> 0;
  const out = new Uint8Array(15);
  let page = -1, hpa = -1;
  for (let k = 0; k < 15; k++) {
    const a = (lin + k) >>> 0;
    if ((a >>> 12) !== page) {
      page = a >>> 12;
      hpa = vc.paging.translate(vc.pctx, a & ~0xfff, false);
      if (hpa < 0) { if (k === 0) return null; break; }
    }
    out[k] = vc.mem.read(hpa + (a & 0xfff), 1);
  }
  return out;
}

export function emulateMmio(vc: VCore, gpa: number): number {
  vc.spend(vmmCosts.mmioDecode.cycles);
  const bytes = fetch(vc);
  const rip = vc.mem.read(vc.vmcb + VMCB_RIP, 4);
  if (bytes === null) return vc.fail(`cannot fetch the instruction at eip 0x${rip.toString(16)} that accessed guest-physical 0x${gpa.toString(16)}`);
  const d = decodeMmio(bytes);
  if (d === null) {
    return vc.fail(`cannot emulate the instruction at eip 0x${rip.toString(16)} (bytes ${[...bytes.slice(0, 8)].map((x) => x.toString(16).padStart(2, '0')).join(' ')}) accessing guest-physical 0x${gpa.toString(16)}`);
  }
  const r = findRegion(vc.vm.mmio, gpa);
  if (d.write) {
    const v = d.reg < 0 ? d.imm : d.size === 4 && d.reg === 0 ? vc.mem.read(vc.vmcb + VMCB_RAX, 4) : readReg(vc, d.reg, d.size);
    if (r !== null) r.dev.write(gpa - r.base, d.size, v);
    else vc.vm.telemetry.bump('unbacked');
  } else {
    let v: number;
    if (r !== null) v = r.dev.read(gpa - r.base, d.size);
    else { vc.vm.telemetry.bump('unbacked'); v = 0xffffffff; }
    v = d.size === 1 ? v & 0xff : d.size === 2 ? v & 0xffff : v >>> 0;
    if (d.signExtend) v = d.size === 1 ? (v << 24) >> 24 : (v << 16) >> 16;
    writeReg(vc, d.reg, d.dstSize, v);
  }
  vc.vm.telemetry.bump(r !== null ? `mmio.${r.name}` : 'mmio.unbacked');
  vc.setRip(rip + d.len);
  return vc.vm.stopRequested ? ACT_STOP : ACT_CONTINUE;
}
