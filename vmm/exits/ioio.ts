/**
 * #VMEXIT(IOIO): a port access. Every port is intercepted (the IOPM is all ones), so a guest
 * never reaches the machine's own devices: hooked ports go to the VM's devices (the VM's port
 * table, a hw/ports.ts PortBus), the rest read all ones and drop writes (counted as unclaimed).
 * EXITINFO1 (APM 15.10.2): TYPE (1 = IN) bit 0, STR 2, REP 3, SZ8/16/32 bits 4-6, PORT 31:16;
 * EXITINFO2 = the next RIP. String forms (INS/OUTS, with REP) move their data through the
 * guest's page tables (ES:EDI for INS, the instruction's segment:ESI for OUTS, 32-bit
 * addressing, RFLAGS.DF); an element at an unmapped address stops the VM in error.
 */
import { VMCB_EXITINFO1, VMCB_EXITINFO2, VMCB_RAX, VMCB_RFLAGS, VMCB_SEGS } from '../../hw/cpu/vmcb.ts';
import { vmmCosts } from '../costs.ts';
import { ACT_CONTINUE, ACT_STOP } from './actions.ts';
import type { VCore } from '../vcore.ts';

const I_EXITINFO1 = VMCB_EXITINFO1 >> 2, I_EXITINFO2 = VMCB_EXITINFO2 >> 2, I_RAX = VMCB_RAX >> 2;

export function handleIoio(vc: VCore): number {
  const mem = vc.mem, vmcb = vc.vmcb;
  // reads of the VMCB (a page of RAM, so its dwords are aligned words of PhysMem's Int32Array)
  const m = mem.i32, b4 = vmcb >>> 2;
  const info = m[b4 + I_EXITINFO1] >>> 0;
  vc.spend(vmmCosts.ioHook.cycles);
  const port = info >>> 16;
  const size = (info & 0x10) !== 0 ? 1 : (info & 0x20) !== 0 ? 2 : 4;
  const ports = vc.vm.ports;
  if ((info & 4) !== 0) return stringIo(vc, info, port, size);
  if ((info & 1) !== 0) {
    const v = ports.in(port, size);
    const old = mem.read(vmcb + VMCB_RAX, 4);
    const nv = size === 4 ? v : size === 2 ? (old & 0xffff0000) | (v & 0xffff) : (old & 0xffffff00) | (v & 0xff);
    mem.write(vmcb + VMCB_RAX, 4, nv >>> 0);
  } else {
    ports.out(port, size, m[b4 + I_RAX] >>> 0);
  }
  vc.setRip(m[b4 + I_EXITINFO2] >>> 0);
  return vc.vm.stopRequested ? ACT_STOP : ACT_CONTINUE;
}

const DF = 0x400;

/** INS/OUTS [with REP]: each element between the port and guest memory. */
function stringIo(vc: VCore, info: number, port: number, size: 1 | 2 | 4): number {
  const mem = vc.mem, b = vc.vmcb, ports = vc.vm.ports;
  if ((info & 0x80) !== 0) return vc.fail(`string port I/O with 16-bit addressing (port 0x${port.toString(16)}) is not emulated`);
  const isIn = (info & 1) !== 0, rep = (info & 8) !== 0;
  const seg = isIn ? 0 : (info >>> 10) & 7;
  const base = mem.read(b + VMCB_SEGS[seg] + 8, 4);
  const ri = isIn ? 7 : 6;
  const step = (mem.read(b + VMCB_RFLAGS, 4) & DF) !== 0 ? -size : size;
  let count = rep ? vc.reg(1) >>> 0 : 1;
  let off = vc.reg(ri) >>> 0;
  vc.vm.telemetry.bump('io.string', count);
  while (count > 0) {
    const lin = (base + off) >>> 0;
    const hpa = vc.paging.translate(vc.pctx, lin, isIn);
    if (hpa < 0 || ((lin & 0xfff) + size > 0x1000 && vc.paging.translate(vc.pctx, (lin + size - 1) >>> 0, isIn) !== hpa + size - 1)) {
      vc.setReg(ri, off);
      if (rep) vc.setReg(1, count);
      return vc.fail(`string port I/O at an unmapped or page-crossing address 0x${lin.toString(16)} (port 0x${port.toString(16)})`);
    }
    vc.spend(vmmCosts.memRef.cycles);
    if (isIn) mem.write(hpa, size, ports.in(port, size));
    else ports.out(port, size, mem.read(hpa, size));
    off = (off + step) >>> 0;
    count--;
  }
  vc.setReg(ri, off);
  if (rep) vc.setReg(1, 0);
  vc.setRip(mem.read(b + VMCB_EXITINFO2, 4));
  return vc.vm.stopRequested ? ACT_STOP : ACT_CONTINUE;
}
