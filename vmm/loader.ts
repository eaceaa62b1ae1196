/**
 * Loading the guest's kernel into guest RAM, like `qemu-system-i386 -kernel`: a Multiboot v1
 * image through the shared loader (hw/boot/multiboot.ts, writing into the VM's RAM block; the
 * command line is "PATH CMDLINE" as QEMU and `bare` build it), or a flat image at its load
 * address. The guest's first state is then what Multiboot defines: flat 32-bit protected mode,
 * paging and interrupts off, EAX = 0x2BADB002, EBX = the information structure.
 */
import { BootError, loadMultiboot, type MultibootModule } from '../hw/boot/multiboot.ts';
import { VMCB_RAX, VMCB_RIP, VMCB_RSP } from '../hw/cpu/vmcb.ts';
import type { VmConfig } from './config.ts';
import type { Result } from './config.ts';
import type { VCore } from './vcore.ts';

export interface LoadedGuest { entry: number; eax: number; ebx: number }

export interface GuestRam {
  readonly size: number;
  write(gpa: number, bytes: Uint8Array): void;
}

/** Loads the kernel (and modules) into `ram`; an error line when an image is missing or malformed. */
export function loadGuest(ram: GuestRam, config: VmConfig, files: Readonly<Record<string, Uint8Array>>): Result<LoadedGuest> {
  const k = config.kernel;
  const image = files[k.path];
  if (image === undefined) return { ok: false, error: `kernel ${k.path}: no image given for this path` };
  if (k.format === 'flat') {
    const load = k.load ?? 0x100000;
    if (load + image.length > ram.size) return { ok: false, error: `kernel ${k.path}: ${image.length} bytes at 0x${load.toString(16)} do not fit in ${ram.size} bytes of guest memory` };
    ram.write(load, image);
    return { ok: true, value: { entry: k.entry ?? load, eax: 0, ebx: 0 } };
  }
  const modules: MultibootModule[] = [];
  for (const f of config.files) {
    const data = files[f.path];
    if (data === undefined) return { ok: false, error: `file ${f.path}: no image given for this path` };
    modules.push({ name: f.path, data, cmdline: f.cmdline ?? f.path });
  }
  try {
    const e = loadMultiboot({ size: ram.size, write: (a, b) => ram.write(a, b) }, image, { cmdline: `${k.path} ${config.cmdline}`, modules, bootLoaderName: 'v3vee-ts vmm' });
    return { ok: true, value: { entry: e.entry, eax: e.eax, ebx: e.ebx } };
  } catch (e) {
    if (e instanceof BootError || e instanceof Error) return { ok: false, error: `kernel ${k.path}: ${e.message}` };
    throw e;
  }
}

/** The boot processor's entry state in its VMCB (initVmcb set the flat segments). */
export function setEntryState(vc: VCore, g: LoadedGuest): void {
  vc.v.w64(VMCB_RIP, g.entry >>> 0);
  vc.v.w64(VMCB_RAX, g.eax >>> 0);
  vc.v.w64(VMCB_RSP, 0);
  vc.regs.fill(0);
  vc.regs[3] = g.ebx;
}
